"""Publishing a change to the campaign files: check it exactly as ``nurture check`` would,
then write it, keeping what it replaces.

:func:`review` runs :func:`nurture.campaigns.check.check` on a copy of the campaigns
folder with the change applied (the folder is a few dozen small files), so a save is
held to the very rules the command line applies, compilation included, and nothing on
disk moves while it is judged. A change is refused when it brings an error: any error
in a file it writes, or an error elsewhere that the files on disk do not have today
(removing a step another file still lists, say). Errors that were already there in
untouched files do not block an unrelated save; the studio shows them anyway.

:func:`publish` takes the folder's lock, checks that nobody changed the files since
the editor read them, reviews, keeps each replaced version in :mod:`.history`, and
writes every file atomically. The running service picks the change up from its next
look at the files (:mod:`.reload`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nurture.campaigns import check, history
from nurture.campaigns.loader import read_catalogue
from nurture.campaigns.model import Catalogue
from nurture.campaigns.problems import Problem, Problems
from nurture.campaigns.writer import remove, write_atomically
from nurture.exceptions import NurtureError
from nurture.settings import Settings

_PROCESS_LOCK = threading.Lock()
_LOCK_FILE = "lock"


@dataclass(frozen=True)
class Change:
    """New text for one file of the campaigns folder; ``text=None`` removes the file.

    ``base`` is :func:`digest` of the file as the editor read it (``""``: it did not
    exist); ``None`` skips that check.
    """

    path: Path
    text: str | None
    base: str | None = None


@dataclass(frozen=True)
class Review:
    """What ``check`` says about the folder with a change applied, and the catalogue it
    would hold (as far as it reads; for previews: its paths point nowhere)."""

    problems: list[Problem]
    blocking: list[Problem] = field(default_factory=list)
    catalogue: Catalogue | None = None

    @property
    def ok(self) -> bool:
        return not self.blocking


class Rejected(NurtureError):
    """The change fails the campaign check; nothing was written."""

    def __init__(self, review: Review) -> None:
        super().__init__(f"{len(review.blocking)} error(s): nothing was saved")
        self.review = review


class Conflict(NurtureError):
    """The file changed since it was opened; nothing was written."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path.name} changed since you opened it", path=str(path))
        self.path = path


def digest(text: str | None) -> str:
    """A short fingerprint of a file's text (``""`` for a missing file)."""
    if text is None:
        return ""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def current_text(path: Path) -> str | None:
    """The file's text now, or ``None`` when there is no such file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def review(settings: Settings, changes: Sequence[Change]) -> Review:
    """``check`` on the campaigns folder as it would be with ``changes`` written."""
    root = Path(settings.campaigns_dir)
    after, catalogue = _check_with(settings, changes)
    touched = {str(root / history.relative(root, c.path)) for c in changes}
    if any(p.is_error and p.path not in touched for p in after):
        before = {(p.path, p.message) for p in check.check(settings) if p.is_error}
    else:
        before = set()
    blocking = [
        p for p in after if p.is_error and (p.path in touched or (p.path, p.message) not in before)
    ]
    return Review(after, blocking, catalogue)


def publish(settings: Settings, changes: Sequence[Change], *, now: datetime) -> Review:
    """Reviews and writes ``changes``; raises :class:`Rejected` or :class:`Conflict`.

    Returns the review (its warnings are worth showing). Every file replaced or removed
    is kept in the history first.
    """
    root = Path(settings.campaigns_dir)
    with folder_lock(root):
        for change in changes:
            if change.base is not None and digest(current_text(change.path)) != change.base:
                raise Conflict(change.path)
        result = review(settings, changes)
        if not result.ok:
            raise Rejected(result)
        for change in changes:
            history.keep(root, change.path, now=now)
            if change.text is None:
                remove(change.path)
            else:
                write_atomically(change.path, change.text)
    return result


@contextlib.contextmanager
def folder_lock(root: Path, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """Holds the campaigns folder's lock (a file in ``.history``), across processes.

    Publishing holds it exclusively; the reloader holds it shared with ``wait=False``
    and skips a look while a publish is half written (yields ``False`` when it could not
    take the lock). A folder the service may not write (a read-only deployment) has no
    lock: yields ``True`` at once.
    """
    with contextlib.ExitStack() as stack:
        if not shared:
            stack.enter_context(_PROCESS_LOCK)
        folder = root / history.FOLDER
        if shared and not folder.is_dir():
            yield True  # no publish ever ran here, so none is half written
            return
        try:
            folder.mkdir(exist_ok=True)
            handle = stack.enter_context(open(folder / _LOCK_FILE, "a+b"))
        except OSError:
            yield True
            return
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle.fileno(), flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_with(settings: Settings, changes: Sequence[Change]) -> tuple[list[Problem], Catalogue]:
    root = Path(settings.campaigns_dir)
    with tempfile.TemporaryDirectory(prefix="nurture-review-") as temporary:
        copy = Path(temporary) / root.name
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(history.FOLDER, ".*.tmp"))
        for change in changes:
            target = copy / history.relative(root, change.path)
            if change.text is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(change.text, encoding="utf-8")
        staged = settings.model_copy(update={"campaigns_dir": copy})
        found = check.check(staged)
        catalogue = read_catalogue(staged, Problems())
        prefix = str(copy)
        problems = [
            Problem(str(root) + p.path[len(prefix) :], p.line, p.message, p.severity)
            if p.path.startswith(prefix)
            else p
            for p in found
        ]
        return problems, catalogue
