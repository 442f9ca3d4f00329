"""The SMTP provider against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from nurture.exceptions import ConfigurationError
from nurture.providers.smtp import SMTPProvider
from nurture.settings import Settings
from tests.helpers import Collector, free_port, serve_smtp, smtp_settings
from tests.integration.providers_contract import Mail, ProviderContract, mail_from_mime, make_batch


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def smtp_server(collector: Collector) -> Iterator[Controller]:
    controller = serve_smtp(collector)
    yield controller
    controller.stop()


class TestSMTPContract(ProviderContract):
    @pytest.fixture
    def provider(self, settings: Settings, smtp_server: Controller) -> SMTPProvider:
        return SMTPProvider(smtp_settings(settings, smtp_server.port))

    @pytest.fixture
    def mailbox(self, collector: Collector) -> Callable[[], list[Mail]]:
        return collector.mails


def test_smtp_sends_the_exact_mime_message_of_the_batch(
    settings: Settings, smtp_server: Controller, collector: Collector
) -> None:
    batch = make_batch(1)
    results = SMTPProvider(smtp_settings(settings, smtp_server.port)).send(batch)

    (received,) = collector.received
    assert received.mail_from == "hello@practice.test"
    assert received.rcpt_tos == ["reader0@example.com"]
    mail = mail_from_mime(received.data)
    assert mail.headers["Message-ID"] == results[0].message_id
    assert mail.headers["Reply-To"] == "alex@practice.test"
    assert mail.headers["Content-Type"].startswith("multipart/alternative")
    # Unfolded and unencoded, or mail clients show no unsubscribe button.
    raw = received.data.replace(b"\r\n", b"\n").split(b"\n")
    header = next(line for line in raw if line.startswith(b"List-Unsubscribe:"))
    assert header.startswith(b"List-Unsubscribe: <https://practice.test/unsubscribe/")
    assert b"=?" not in header


def test_smtp_sends_a_non_ascii_local_part_first_on_a_fresh_connection(
    settings: Settings, collector: Collector
) -> None:
    """Whether the server offers SMTPUTF8 is known only once it has been greeted: the
    first message of a connection must not be refused for want of asking."""
    controller = serve_smtp(collector, enable_SMTPUTF8=True)
    try:
        batch = make_batch(2)
        batch.recipients[0].email = "jöe@example.com"
        results = SMTPProvider(smtp_settings(settings, controller.port)).send(batch)
    finally:
        controller.stop()
    assert [r.outcome.value for r in results] == ["sent", "sent"]
    received = [r.rcpt_tos for r in collector.received]
    assert received == [["jöe@example.com"], ["reader1@example.com"]]
    assert "jöe@example.com".encode() in collector.received[0].data  # UTF-8, not encoded words


def test_smtp_never_sends_a_bcc_header(
    settings: Settings, smtp_server: Controller, collector: Collector
) -> None:
    batch = make_batch(1)
    batch.recipients[0].headers["Bcc"] = "someone-else@example.com"
    SMTPProvider(smtp_settings(settings, smtp_server.port)).send(batch)
    (received,) = collector.received
    assert received.rcpt_tos == ["reader0@example.com"]
    assert b"someone-else" not in received.data


def test_smtp_reuses_one_connection_across_chunks(
    settings: Settings, smtp_server: Controller, collector: Collector
) -> None:
    provider = SMTPProvider(smtp_settings(settings, smtp_server.port))
    provider.max_recipients = 2

    results = provider.send(make_batch(5))

    assert [r.outcome for r in results] == ["sent"] * 5
    assert len(collector.received) == 5
    assert len({r.peer for r in collector.received}) == 1


def test_smtp_refused_recipient_fails_alone(
    settings: Settings, smtp_server: Controller, collector: Collector
) -> None:
    collector.refuse.add("reader1@example.com")

    results = SMTPProvider(smtp_settings(settings, smtp_server.port)).send(make_batch(3))

    assert [r.outcome for r in results] == ["sent", "failed", "sent"]
    assert "550" in (results[1].error or "")
    assert sorted(r.rcpt_tos[0] for r in collector.received) == [
        "reader0@example.com",
        "reader2@example.com",
    ]


def test_smtp_server_closing_mid_batch_leaves_the_rest_to_retry(
    settings: Settings, smtp_server: Controller, collector: Collector
) -> None:
    collector.close_on.add("reader1@example.com")
    provider = SMTPProvider(smtp_settings(settings, smtp_server.port))
    provider.max_recipients = 2

    results = provider.send(make_batch(4))

    assert [r.outcome for r in results] == ["sent", "retry", "retry", "retry"]
    assert "421" in (results[1].error or "")
    assert not any(r.maybe_sent for r in results)
    assert [r.rcpt_tos for r in collector.received] == [["reader0@example.com"]]


def test_smtp_unreachable_server_asks_for_a_retry(settings: Settings) -> None:
    results = SMTPProvider(smtp_settings(settings, free_port())).send(make_batch(2))

    assert [r.outcome for r in results] == ["retry", "retry"]
    assert not any(r.maybe_sent for r in results)
    assert "cannot reach" in (results[0].error or "")


def test_smtp_without_starttls_on_the_server_is_a_configuration_error(
    settings: Settings, smtp_server: Controller
) -> None:
    provider = SMTPProvider(smtp_settings(settings, smtp_server.port, smtp_starttls=True))

    with pytest.raises(ConfigurationError, match="STARTTLS"):
        provider.send(make_batch(1))


# TLS and login ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for 127.0.0.1: (cert file, key file, PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "cert.pem", folder / "key.pem", pem


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"practice",
        b"s3cret",
    )
    # handled=False: let aiosmtpd answer 535 itself on failure.
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_server(collector: Collector, certificate: tuple[Path, Path, bytes]) -> Iterator[Controller]:
    cert_file, key_file, _ = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    controller = serve_smtp(
        collector,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    yield controller
    controller.stop()


def test_smtp_starttls_and_login(
    settings: Settings,
    tls_server: Controller,
    collector: Collector,
    certificate: tuple[Path, Path, bytes],
) -> None:
    trusted = ssl.create_default_context(cadata=certificate[2].decode())
    config = smtp_settings(
        settings,
        tls_server.port,
        smtp_starttls=True,
        smtp_username="practice",
        smtp_password=SecretStr("s3cret"),
    )

    results = SMTPProvider(config, ssl_context=trusted).send(make_batch(2))

    assert [r.outcome for r in results] == ["sent", "sent"]
    assert len(collector.received) == 2


def test_smtp_wrong_password_is_a_configuration_error(
    settings: Settings, tls_server: Controller, certificate: tuple[Path, Path, bytes]
) -> None:
    trusted = ssl.create_default_context(cadata=certificate[2].decode())
    config = smtp_settings(
        settings,
        tls_server.port,
        smtp_starttls=True,
        smtp_username="practice",
        smtp_password=SecretStr("wrong"),
    )

    with pytest.raises(ConfigurationError, match="refused the login"):
        SMTPProvider(config, ssl_context=trusted).send(make_batch(1))


def test_smtp_untrusted_certificate_is_a_configuration_error(
    settings: Settings, tls_server: Controller
) -> None:
    config = smtp_settings(settings, tls_server.port, smtp_starttls=True)

    with pytest.raises(ConfigurationError, match="certificate"):
        SMTPProvider(config).send(make_batch(1))


def test_smtp_server_requiring_tls_refuses_clear_text_as_a_configuration_error(
    settings: Settings, tls_server: Controller
) -> None:
    config = smtp_settings(settings, tls_server.port, smtp_starttls=False)

    with pytest.raises(ConfigurationError, match="TLS or a login"):
        SMTPProvider(config).send(make_batch(1))
