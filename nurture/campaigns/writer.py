"""Writing the therapist's files back, the way a person would have written them.

The studio edits a few front-matter keys and the body of an email, or the ``steps``
list of a ``campaign.yaml``. Everything else in the file stays byte for byte as it was:
keys this module does not touch, their comments, the quoting style of a value that did
not change. A changed value is written as a double-quoted YAML string (a JSON string is
one), so a colon in a subject can never break the file again.

:func:`write_atomically` replaces a file in one step (a temporary file in the same
folder, flushed, then renamed over it), so a reader (the service reloading, ``git``)
never sees half a file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from nurture.campaigns.documents import YamlSyntaxError, split_front_matter

_DELIMITER = "---"
_TOP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*:")


def scalar(value: str) -> str:
    """``value`` as a YAML double-quoted scalar (``0`` stays a bare zero)."""
    if value == "0":
        return "0"
    return json.dumps(value, ensure_ascii=False)


def normalise_body(body: str) -> str:
    """A body as a browser sent it (CRLF line ends, maybe no final newline) -> as stored."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip("\n") + "\n" if text.strip() else ""


def email_file(values: Mapping[str, str | None], body: str, *, previous: str | None = None) -> str:
    """The text of an email file with these front-matter ``values`` and ``body``.

    With ``previous`` (the file as it is now), keys not in ``values`` keep their lines,
    a key whose value did not change keeps its line (quoting and comment included), a
    changed key is rewritten where it stood, a new key is added at the end of the front
    matter, and a key whose value is ``None`` is removed.
    """
    lines = _front_lines(previous) if previous is not None else None
    if lines is None:
        front = [f"{key}: {scalar(value)}\n" for key, value in values.items() if value is not None]
        return f"{_DELIMITER}\n{''.join(front)}{_DELIMITER}\n{normalise_body(body)}"
    old_values = _old_values(previous or "")
    for key, value in values.items():
        if value is not None and key in old_values and old_values[key] == value:
            continue
        lines = _replace_key(lines, key, None if value is None else f"{key}: {scalar(value)}\n")
    return f"{_DELIMITER}\n{''.join(lines)}{_DELIMITER}\n{normalise_body(body)}"


def with_steps(campaign_yaml: str, steps: Sequence[str]) -> str:
    """``campaign.yaml`` with its ``steps`` list replaced, every other line unchanged."""
    lines = campaign_yaml.splitlines(keepends=True)
    start, end = _extent(lines, "steps")
    indent = "  "
    if start is not None:
        for line in lines[start + 1 : end]:
            match = re.match(r"^(\s*)-\s", line)
            if match:
                indent = match.group(1)
                break
    block = ["steps:\n", *(f"{indent}- {slug}\n" for slug in steps)]
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return "".join([*lines, *block])
    return "".join([*lines[:start], *block, *lines[end:]])


def write_atomically(path: Path, text: str) -> None:
    """Replaces ``path`` with ``text`` (UTF-8) in one rename; keeps the file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def remove(path: Path) -> None:
    """Deletes ``path`` (already gone is fine) and makes the removal durable."""
    path.unlink(missing_ok=True)
    _sync_folder(path.parent)


# -- helpers -----------------------------------------------------------------------------


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(fd)


def _front_lines(text: str) -> list[str] | None:
    """The lines between the two ``---`` of ``text``, or ``None`` without front matter."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != _DELIMITER:
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == _DELIMITER:
            front = lines[1:index]
            if front and not front[-1].endswith("\n"):
                front[-1] += "\n"
            return front
    return None


def _old_values(text: str) -> dict[str, str]:
    try:
        data = split_front_matter(text).front.data
    except YamlSyntaxError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str | int | float)}


def _extent(lines: list[str], key: str) -> tuple[int | None, int]:
    """The lines ``[start, end)`` holding top-level ``key`` and its value."""
    start = next(
        (i for i, line in enumerate(lines) if (m := _TOP_KEY.match(line)) and m.group(1) == key),
        None,
    )
    if start is None:
        return None, len(lines)
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and not line[0].isspace() and not line.startswith(("-", "#")):
            break
        end += 1
    # Blank lines and comments after the value belong to whatever follows.
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return start, end


def _replace_key(lines: list[str], key: str, replacement: str | None) -> list[str]:
    start, end = _extent(lines, key)
    new = [replacement] if replacement is not None else []
    if start is None:
        return [*lines, *new]
    return [*lines[:start], *new, *lines[end:]]
