"""A fake SendGrid Mail Send API: real HTTP on loopback, strict about what it accepts.

Tests point ``NURTURE_SENDGRID_HOST`` at :attr:`FakeSendGrid.url` and drive the
official client at it, so everything between our provider and the wire is exercised.
The server checks the bearer token, validates every body against SendGrid's JSON
Schema (``mail_send_request.schema.json``, a copy of ``shared/sendgrid``'s kept in the
package) plus the rules the schema leaves out, and answers like SendGrid: 400 with
``{"errors": [{"message", "field"}]}``, or 202 with ``X-Message-Id`` (200 in sandbox
mode). It records what it accepted and can be scripted to misbehave
(:meth:`FakeSendGrid.fail_next`) or to refuse given addresses.

One idea per module:

- :mod:`~nurture.testing.sendgrid.server`: the HTTP server and :class:`FakeSendGrid`;
- :mod:`~nurture.testing.sendgrid.validation`: the schema and rules over a whole body;
- :mod:`~nurture.testing.sendgrid.rules`: SendGrid's limits, one rule per function;
- :mod:`~nurture.testing.sendgrid.faults`: scripted 429s, 5xx, slow and lost answers;
- :mod:`~nurture.testing.sendgrid.records`: what was accepted and answered.

It needs the ``nurture[testing]`` extra (``jsonschema``), imported only when a
:class:`FakeSendGrid` is made. Run it on its own (for a benchmark, away from the
sender's GIL) with ``python -m nurture.testing.sendgrid --port 8025 --validate sample``.
"""

from __future__ import annotations

from nurture.testing.sendgrid.faults import Fault
from nurture.testing.sendgrid.records import Accepted, Delivered
from nurture.testing.sendgrid.rules import SAMPLE_SIZE, Error
from nurture.testing.sendgrid.server import FakeSendGrid
from nurture.testing.sendgrid.validation import load_schema

__all__ = ["SAMPLE_SIZE", "Accepted", "Delivered", "Error", "FakeSendGrid", "Fault", "load_schema"]
