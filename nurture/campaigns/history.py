"""Every earlier version of the therapist's files, kept beside them.

Before the studio replaces or removes a file, the version it replaces is copied to
``campaigns/.history/<the file's path>/<UTC time>-<random>.<ext>``. That works whether
or not ``campaigns/`` is a git repository (the loader skips folders starting with a
dot, and ``.gitignore`` keeps it out of commits), and a backup of ``campaigns/`` carries
the history with it. Versions are never rewritten; restoring one writes it back as a new
current version, so the one it replaces goes into the history too.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from nurture.campaigns.writer import write_atomically
from nurture.exceptions import CampaignError

FOLDER = ".history"
_VERSION = re.compile(r"^(\d{8}T\d{6}\d{6}Z)-([a-z0-9]{6})$")


@dataclass(frozen=True)
class Version:
    """One earlier version of a file: ``id`` names it in URLs, ``saved_at`` is when it was
    replaced (aware UTC)."""

    id: str
    saved_at: datetime
    path: Path

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def relative(root: Path, path: Path) -> PurePosixPath:
    """``path`` relative to the campaigns folder; :class:`CampaignError` when outside it."""
    try:
        inside = path.resolve().relative_to(root.resolve())
    except ValueError:
        raise CampaignError("not a file of the campaigns folder", path=str(path)) from None
    if not inside.parts or inside.parts[0] == FOLDER:
        raise CampaignError("not a file of the campaigns folder", path=str(path))
    return PurePosixPath(*inside.parts)


def keep(root: Path, path: Path, *, now: datetime) -> Version | None:
    """Copies the current ``path`` into the history; ``None`` when it does not exist."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    folder = _folder(root, path)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    version_id = f"{stamp}-{secrets.token_hex(3)}"
    target = folder / f"{version_id}{path.suffix}"
    write_atomically(target, text)
    return Version(version_id, _parse_stamp(stamp), target)


def versions(root: Path, path: Path) -> list[Version]:
    """The kept versions of ``path``, newest first."""
    folder = _folder(root, path)
    if not folder.is_dir():
        return []
    found = []
    for file in folder.iterdir():
        match = _VERSION.match(file.stem)
        if match and file.is_file():
            found.append(Version(file.stem, _parse_stamp(match.group(1)), file))
    return sorted(found, key=lambda v: v.id, reverse=True)


def version(root: Path, path: Path, version_id: str) -> Version:
    """One kept version of ``path``; :class:`CampaignError` when there is no such version."""
    if _VERSION.match(version_id):
        for found in versions(root, path):
            if found.id == version_id:
                return found
    raise CampaignError(f"no earlier version {version_id!r}", path=str(path))


def _folder(root: Path, path: Path) -> Path:
    return root / FOLDER / relative(root, path)


def _parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
