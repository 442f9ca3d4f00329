"""Problems found in campaign files, reported as ``path:line: message``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One problem in one file; ``str()`` gives the line ``nurture check`` prints."""

    path: str
    line: int
    message: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}: {prefix}{self.message}"


@dataclass
class Problems:
    """Collects problems while reading, so that one pass can report all of them."""

    items: list[Problem] = field(default_factory=list)

    def error(self, path: Path | str, line: int, message: str) -> None:
        self.items.append(Problem(str(path), max(line, 1), message, "error"))

    def warning(self, path: Path | str, line: int, message: str) -> None:
        self.items.append(Problem(str(path), max(line, 1), message, "warning"))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.is_error]
