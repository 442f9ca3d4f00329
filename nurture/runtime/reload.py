"""Campaign edits reach the running service without a restart.

:func:`refresh` asks the services' :class:`~nurture.campaigns.reload.CatalogueSource`
to look at the files and, when they changed and pass the check, hands the new catalogue
to every object that holds one: the renderer (a fresh one, so no compiled step of the
old text survives), the sign-up service, the dispatcher and its composer, the webhook
event handler. Each is one attribute assignment, so a request or a pass sees either
the old catalogue or the new one.

Who calls it, so that the web half and the scheduler both use the new version before
it is used for anything:

- the scheduler's ``plan`` and ``dispatch`` jobs, first thing in every pass (so the
  tick that follows an edit plans and sends with it);
- :class:`Watcher`, a thread ``nurture serve`` runs beside the web app (every couple of
  seconds; a web-only process has no scheduler to do it);
- the studio, right after it publishes a change.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from nurture.campaigns.model import Catalogue
from nurture.campaigns.reload import CatalogueSource
from nurture.runtime.services import Services

log = logging.getLogger(__name__)

#: How often the watcher thread looks at the files at most (a tick is usually longer).
WATCH_SECONDS = 2.0


def source(services: Services) -> CatalogueSource:
    """The services' catalogue source (made on first use for hand-built services)."""
    found = services.catalogue_source
    if found is None:
        found = services.catalogue_source = CatalogueSource(
            services.settings, services.catalogue, clock=services.clock
        )
    return found


def refresh(services: Services) -> bool:
    """Reloads the campaigns when the files changed and pass the check; True when it did.

    Never raises: a failure to look keeps the catalogue in service and is logged.
    """
    try:
        catalogue = source(services).refresh()
    except Exception:  # a bug in reading must never stop planning or sending
        log.exception("campaign reload failed", extra={"action": "campaigns.reload"})
        return False
    if catalogue is None:
        return False
    use(services, catalogue)
    return True


def use(services: Services, catalogue: Catalogue) -> None:
    """Puts ``catalogue`` in service in every object of ``services`` that holds one."""
    from nurture.rendering import Renderer

    renderer = Renderer(services.settings, catalogue)
    services.renderer = renderer
    services.catalogue = catalogue
    services.subscriptions.catalogue = catalogue
    services.delivery_events.catalogue = catalogue
    dispatcher = services.dispatcher
    dispatcher.composer.renderer = renderer
    dispatcher.composer.catalogue = catalogue
    dispatcher.catalogue = catalogue


def status(services: Services) -> dict[str, Any]:
    """What ``/healthz`` says about the campaign files."""
    state = source(services).state
    detail: dict[str, Any] = {
        "status": "ok" if state.broken_since is None else "problems",
        "loaded_at": state.loaded_at.isoformat(),
    }
    if state.broken_since is not None:
        detail["broken_since"] = state.broken_since.isoformat()
        detail["problems"] = [str(p) for p in state.errors[:20]]
        detail["note"] = "the last good version of the campaigns stays in service"
    return detail


class Watcher:
    """A daemon thread calling :func:`refresh` every ``every`` seconds until stopped."""

    def __init__(self, services: Services, every: float | None = None) -> None:
        self.services = services
        self.every = every or min(WATCH_SECONDS, float(services.settings.tick_seconds))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="campaign-watcher", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            refresh(self.services)
