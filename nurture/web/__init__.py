"""The web app: the subscriber's pages, the therapist's preview and the operator's endpoints.

Build it with :func:`nurture.web.app.create_app`. This package only calls the core
through :class:`nurture.runtime.services.Services`; nothing in the core imports it. The package
itself imports nothing, so that route modules can import :mod:`nurture.web.templating`
without pulling in the whole app.
"""
