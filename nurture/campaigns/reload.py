"""The catalogue in service, kept in step with the files while the service runs.

Whoever changes ``campaigns/`` (the studio, an editor, ``git pull``), the running
service notices on its next look: :meth:`CatalogueSource.refresh` compares a cheap
fingerprint of the folder (each file's path, size, modification time and inode) with
the one it last read, and only when it differs runs the full ``nurture check``. A clean
result replaces the catalogue; any error keeps the last good catalogue in service,
logs the problems and keeps them for ``/healthz`` and the studio, so a half-finished
edit in a text editor never reaches a reader.

This module only decides *what* is in service; :mod:`nurture.runtime.reload` hands a
new catalogue to everything that uses one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nurture.campaigns import check, publishing
from nurture.campaigns.loader import load_catalogue
from nurture.campaigns.model import Catalogue
from nurture.campaigns.problems import Problem
from nurture.clock import utcnow
from nurture.exceptions import CampaignError
from nurture.settings import Settings

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int, int], ...]


def fingerprint(root: Path) -> Fingerprint:
    """What changes when any campaign file changes: (path, size, mtime, inode) of each.

    Folders starting with ``.`` or ``_`` (the history among them) and temporary files
    are left out, as the loader leaves them out.
    """
    entries = []
    for folder, folders, files in os.walk(root):
        folders[:] = sorted(f for f in folders if not f.startswith((".", "_")))
        for name in files:
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue  # removed while we looked: the next look sees the folder settled
            entries.append(
                (os.path.relpath(path, root), info.st_size, info.st_mtime_ns, info.st_ino)
            )
    return tuple(sorted(entries))


@dataclass(frozen=True)
class State:
    """What is in service, and what the files on disk say.

    ``problems`` are the errors and warnings of the last look that found errors (empty
    while the files are good). ``broken_since`` is set while the files on disk fail the
    check and an older catalogue stays in service.
    """

    catalogue: Catalogue
    loaded_at: datetime
    problems: tuple[Problem, ...] = field(default=())
    broken_since: datetime | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


class CatalogueSource:
    """The last good catalogue, refreshed from the files on request. Thread-safe."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.root = Path(settings.campaigns_dir)
        self.clock = clock
        self._seen = fingerprint(self.root)
        self._state = State(catalogue, clock())
        self._lock = threading.Lock()

    @property
    def state(self) -> State:
        return self._state

    @property
    def catalogue(self) -> Catalogue:
        return self._state.catalogue

    def refresh(self) -> Catalogue | None:
        """Looks at the files; returns the new catalogue when it replaced the old one.

        ``None`` when nothing changed, when the change fails the check (the old
        catalogue stays; see :attr:`state`), or while a publish is being written.
        """
        if not self._lock.acquire(blocking=False):
            return None  # another thread is already looking
        try:
            seen = fingerprint(self.root)
            if seen == self._seen:
                return None
            with publishing.folder_lock(self.root, shared=True, wait=False) as settled:
                if not settled:
                    return None
                return self._read(fingerprint(self.root))
        finally:
            self._lock.release()

    def _read(self, seen: Fingerprint) -> Catalogue | None:
        now = self.clock()
        try:
            problems = check.check(self.settings)
            errors = [p for p in problems if p.is_error]
            catalogue = None if errors else load_catalogue(self.settings)
        except (CampaignError, OSError) as exc:
            errors = problems = [Problem(str(self.root), 1, f"could not read: {exc}")]
            catalogue = None
        if fingerprint(self.root) != seen:
            return None  # changed while we read: read again at the next look
        self._seen = seen
        old = self._state
        if catalogue is None:
            self._state = State(
                old.catalogue, old.loaded_at, tuple(problems), old.broken_since or now
            )
            log.warning(
                "campaign files fail the check; the last good version stays in service",
                extra={
                    "action": "campaigns.reload",
                    "errors": len(errors),
                    "problems": [str(p) for p in errors[:20]],
                },
            )
            return None
        self._state = State(catalogue, now)
        log.info(
            "campaign files reloaded",
            extra={
                "action": "campaigns.reload",
                "campaigns": len(catalogue.campaigns),
                "newsletters": len(catalogue.newsletters),
            },
        )
        return catalogue
