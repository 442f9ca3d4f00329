"""Any SMTP server, with one connection reused for a whole batch.

Each recipient gets their own complete MIME message (:meth:`Batch.wire`, the very
message ``nurture preview`` writes), so a chunk here is only a unit of progress: the
connection is opened once per :meth:`Provider.send` and checked with ``NOOP`` before
each further chunk, because servers close idle connections.
"""

from __future__ import annotations

import smtplib
import ssl

from nurture.exceptions import ConfigurationError
from nurture.mail.messages import Batch, Recipient, UnsendableRecipient, header_address
from nurture.providers.base import ChunkError, Outcome, Provider, SendResult
from nurture.settings import Settings


class SMTPProvider(Provider):
    """Sends through ``settings.smtp_host``: SMTPS when ``smtp_ssl``, else STARTTLS when
    ``smtp_starttls`` (required then: a server that does not offer it is a configuration
    error, never a silent fall back to clear text), and login when ``smtp_username``.

    ``ssl_context`` replaces the default (system CAs, hostname checked), e.g. to trust a
    private CA.
    """

    name = "smtp"
    max_recipients = 100

    def __init__(self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.use_ssl = settings.smtp_ssl
        self.starttls = settings.smtp_starttls and not settings.smtp_ssl
        self.username = settings.smtp_username
        self.password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
        self.timeout = settings.smtp_timeout
        self.ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None
        self._fresh = False
        self._delivered = 0
        #: Why the connection was lost, when it was: the rest of the batch waits.
        self._lost: str | None = None

    def open(self) -> None:
        self._lost = None
        self._delivered = 0
        self._conn = self._connect()
        self._fresh = True

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        self._keep_alive()
        results = []
        for recipient in batch.recipients:
            if self._conn is None:
                results.append(
                    SendResult(recipient, Outcome.RETRY, error=self._lost or "SMTP connection lost")
                )
                continue
            results.append(self._send_one(self._conn, batch, recipient))
        return results

    def _send_one(self, conn: smtplib.SMTP, batch: Batch, recipient: Recipient) -> SendResult:
        try:
            # Built here, per recipient: a message that cannot be written fails alone.
            data, message_id = batch.wire(recipient)
            to_address = header_address(recipient.email)
        except UnsendableRecipient as exc:
            return SendResult(recipient, Outcome.FAILED, error=exc.message)
        try:
            # The envelope gets the address as written in To: (punycode domain); a
            # non-ASCII local part asks for SMTPUTF8 (or is refused, below), as
            # smtplib's send_message would.
            conn.sendmail(
                batch.sender.email,
                [to_address],
                data,
                mail_options=_international(conn, batch.sender.email, to_address),
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients.get(to_address, (0, b""))
            return self._answered(conn, recipient, code, reply, "recipient refused")
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            if exc.smtp_code == 530 and not self._delivered:
                # "Authentication required" / "Must issue STARTTLS first": our settings.
                # (Raised only while nothing went out: raising later would lose the
                # results of messages already sent in this chunk.)
                raise ConfigurationError(
                    f"the SMTP server {self.host}:{self.port} wants TLS or a login first "
                    f"({exc.smtp_code} {exc.smtp_error!r}); check NURTURE_SMTP_*"
                ) from None
            return self._answered(conn, recipient, exc.smtp_code, exc.smtp_error, "refused")
        except smtplib.SMTPNotSupportedError as exc:
            # An international address the server cannot carry: that will not change.
            return SendResult(recipient, Outcome.FAILED, error=f"SMTP: {exc}")
        except smtplib.SMTPResponseException as exc:
            return self._answered(conn, recipient, exc.smtp_code, exc.smtp_error, "error")
        except (smtplib.SMTPException, OSError) as exc:
            # Timeout or disconnect mid-transaction: the server may have taken DATA.
            self._lose(f"SMTP connection lost: {type(exc).__name__}: {exc}")
            return SendResult(recipient, Outcome.RETRY, error=self._lost, maybe_sent=True)
        self._delivered += 1
        return SendResult(recipient, Outcome.SENT, message_id=message_id)

    def _answered(
        self,
        conn: smtplib.SMTP,
        recipient: Recipient,
        code: int,
        reply: bytes | str,
        what: str,
    ) -> SendResult:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        error = f"SMTP {what}: {code} {text}".strip()
        if code in (421, 530) or conn.sock is None:
            # 421: the server is closing the connection (smtplib already closed it).
            self._lose(error)
            return SendResult(recipient, Outcome.RETRY, error=error)
        if 500 <= code < 600:
            return SendResult(recipient, Outcome.FAILED, error=error)
        return SendResult(recipient, Outcome.RETRY, error=error)

    def _keep_alive(self) -> None:
        """Checks a reused connection before a chunk; reconnects once if it went stale."""
        if self._conn is None or self._fresh:
            self._fresh = False
            return
        try:
            code, _ = self._conn.noop()
            if code == 250:
                return
        except (smtplib.SMTPException, OSError):
            pass
        self.close()
        try:
            self._conn = self._connect()
        except ChunkError as exc:
            self._lose(exc.message)

    def _lose(self, reason: str) -> None:
        self._lost = reason
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> smtplib.SMTP:
        """A ready connection: TLS as configured and logged in."""
        context = self.ssl_context or ssl.create_default_context()
        where = f"{self.host}:{self.port}"
        try:
            conn: smtplib.SMTP
            if self.use_ssl:
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                if self.starttls:
                    conn.starttls(context=context)
                if self.username:
                    conn.login(self.username, self.password)
            except BaseException:
                conn.close()
                raise
        except smtplib.SMTPNotSupportedError as exc:
            raise ConfigurationError(
                f"the SMTP server {where} does not offer STARTTLS ({exc}); "
                "use NURTURE_SMTP_SSL, or NURTURE_SMTP_STARTTLS=false on a trusted network only"
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise ConfigurationError(
                f"the SMTP server {where} refused the login: {exc.smtp_code}; "
                "check NURTURE_SMTP_USERNAME and NURTURE_SMTP_PASSWORD"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise ConfigurationError(
                f"the TLS certificate of {where} is not valid: {exc.verify_message}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise ConfigurationError(
                    f"the SMTP server {where} refused us: {exc.smtp_code} {exc.smtp_error!r}"
                ) from None
            raise ChunkError(f"SMTP {where}: {exc.smtp_code}", retryable=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ChunkError(
                f"cannot reach the SMTP server {where}: {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc
        return conn


def _international(conn: smtplib.SMTP, sender: str, to_address: str) -> tuple[str, ...]:
    """The MAIL options an address needs: SMTPUTF8 for a non-ASCII one (RFC 6531), which
    a server that does not offer it cannot carry."""
    if (sender + to_address).isascii():
        return ()
    conn.ehlo_or_helo_if_needed()  # what the server offers is known only once greeted
    if not conn.has_extn("smtputf8"):
        raise smtplib.SMTPNotSupportedError(
            "a non-ASCII address needs SMTPUTF8, which the server does not offer"
        )
    return ("SMTPUTF8", "BODY=8BITMIME")
