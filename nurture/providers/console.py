"""A developer's backend: every message printed to standard output.

Addresses are shown in clear on purpose: this is a tool for a developer's terminal,
never for a server's logs.
"""

from __future__ import annotations

import sys
from typing import TextIO

from nurture.mail.messages import Batch, UnsendableRecipient
from nurture.providers.base import Outcome, Provider, SendResult


class ConsoleProvider(Provider):
    """Prints each recipient's complete MIME message, separated by a rule."""

    name = "console"
    max_recipients = 1000

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        out = self.stream or sys.stdout
        results = []
        for recipient in batch.recipients:
            try:
                message = batch.mime(recipient)  # per recipient: a bad one fails alone
            except UnsendableRecipient as exc:
                results.append(SendResult(recipient, Outcome.FAILED, error=exc.message))
                continue
            out.write(message.as_string() + "\n" + "-" * 72 + "\n")
            results.append(
                SendResult(recipient, Outcome.SENT, message_id=str(message["Message-ID"]))
            )
        out.flush()
        return results
