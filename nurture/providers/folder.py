"""The development default: every message becomes an ``.eml`` file under MAIL_DIR.

Files are named after the outbox id (``123.eml``), or a random id for mail outside the
outbox (confirmations, test sends), and written atomically (a temporary file renamed
into place), so a reader never sees half a message and a resend replaces the file
rather than adding a second one. The ``/dev/mail`` page reads the same folder.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from nurture.mail.messages import Batch, Recipient, UnsendableRecipient
from nurture.providers.base import ChunkError, Outcome, Provider, SendResult
from nurture.settings import Settings


class FolderProvider(Provider):
    """Writes each recipient's complete MIME message to ``settings.resolved_mail_dir``."""

    name = "folder"
    max_recipients = 1000
    # Each message is its own temporary file, renamed into place: nothing is shared.
    thread_safe = True

    def __init__(self, settings: Settings) -> None:
        self.directory = Path(settings.resolved_mail_dir)

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ChunkError(f"cannot create {self.directory}: {exc}", retryable=True) from exc

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        return [self._write(batch, recipient) for recipient in batch.recipients]

    def path_for(self, outbox_id: int | None) -> Path:
        """Where the message for ``outbox_id`` goes (a fresh random name for ``None``)."""
        stem = str(outbox_id) if outbox_id is not None else uuid.uuid4().hex
        return self.directory / f"{stem}.eml"

    def reconcile(self, outbox_id: int) -> bool | None:
        """True when the message for ``outbox_id`` was written."""
        return self.path_for(outbox_id).exists()

    def _write(self, batch: Batch, recipient: Recipient) -> SendResult:
        try:
            # Built here, per recipient: a message that cannot be written fails alone.
            data, message_id = batch.wire(recipient)
        except UnsendableRecipient as exc:
            return SendResult(recipient, Outcome.FAILED, error=exc.message)
        target = self.path_for(recipient.outbox_id)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # Nothing half-written is left behind, so trying again later is safe.
            return SendResult(recipient, Outcome.RETRY, error=f"cannot write {target.name}: {exc}")
        return SendResult(recipient, Outcome.SENT, message_id=message_id)
