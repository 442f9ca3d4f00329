"""The folder and console providers, the provider factory, and the base send loop."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from nurture.exceptions import ConfigurationError
from nurture.mail.messages import Batch
from nurture.providers import make_provider
from nurture.providers.base import ChunkError, Provider, SendResult
from nurture.providers.console import ConsoleProvider
from nurture.providers.folder import FolderProvider
from nurture.providers.sendgrid import SendGridProvider
from nurture.providers.smtp import SMTPProvider
from nurture.settings import Settings
from tests.integration.providers_contract import Mail, ProviderContract, mail_from_mime, make_batch


class TestFolderContract(ProviderContract):
    @pytest.fixture
    def provider(self, settings: Settings) -> FolderProvider:
        return FolderProvider(settings)

    @pytest.fixture
    def mailbox(self, settings: Settings) -> Callable[[], list[Mail]]:
        def read() -> list[Mail]:
            folder = settings.resolved_mail_dir
            files = sorted(folder.glob("*.eml")) if folder.exists() else []
            return [mail_from_mime(f.read_bytes()) for f in files]

        return read


def test_folder_names_files_after_the_outbox_id_and_leaves_no_temporary_file(
    settings: Settings,
) -> None:
    provider = FolderProvider(settings)
    results = provider.send(make_batch(2))

    folder = settings.resolved_mail_dir
    assert sorted(p.name for p in folder.iterdir()) == ["1000.eml", "1001.eml"]
    written = mail_from_mime((folder / "1000.eml").read_bytes())
    assert written.headers["Message-ID"] == results[0].message_id


def test_folder_writes_list_unsubscribe_as_mail_clients_read_it(settings: Settings) -> None:
    """Folded at 78 characters, Python encodes the whole header as RFC 2047 words, and
    mail clients then show no unsubscribe button: it must stay plain."""
    FolderProvider(settings).send(make_batch(1))
    raw = (settings.resolved_mail_dir / "1000.eml").read_bytes()
    header = next(line for line in raw.split(b"\r\n") if line.startswith(b"List-Unsubscribe:"))
    assert header.startswith(b"List-Unsubscribe: <https://practice.test/unsubscribe/")
    assert b"=?" not in header


def test_folder_reconciles_what_it_wrote(settings: Settings) -> None:
    provider = FolderProvider(settings)
    provider.send(make_batch(1))

    assert provider.reconcile(1000) is True
    assert provider.reconcile(1001) is False


def test_folder_resending_replaces_the_file(settings: Settings) -> None:
    provider = FolderProvider(settings)
    provider.send(make_batch(1))
    provider.send(make_batch(1))

    assert [p.name for p in settings.resolved_mail_dir.iterdir()] == ["1000.eml"]


def test_folder_names_mail_outside_the_outbox_randomly(settings: Settings) -> None:
    batch = make_batch(2)
    loose = [r.__class__(r.email, r.values, r.headers) for r in batch.recipients]
    FolderProvider(settings).send(Batch(batch.content, batch.sender, loose))

    names = [p.name for p in settings.resolved_mail_dir.iterdir()]
    assert len(names) == 2 and all(n.endswith(".eml") and len(n) == 36 for n in names)


def test_folder_that_cannot_be_written_asks_for_a_retry(settings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the mail folder should be")
    provider = FolderProvider(settings.model_copy(update={"mail_dir": blocker / "mail"}))

    results = provider.send(make_batch(2))

    assert [r.outcome for r in results] == ["retry", "retry"]
    assert not any(r.maybe_sent for r in results)


def test_console_prints_each_message_with_its_headers() -> None:
    stream = io.StringIO()
    results = ConsoleProvider(stream).send(make_batch(2))

    out = stream.getvalue()
    assert [r.outcome for r in results] == ["sent", "sent"]
    assert "To: reader0@example.com" in out and "To: reader1@example.com" in out
    assert out.count("List-Unsubscribe-Post: List-Unsubscribe=One-Click") == 2


def test_make_provider_follows_the_delivery_setting(settings: Settings) -> None:
    def made(**update: object) -> Provider:
        return make_provider(settings.model_copy(update=update))

    assert isinstance(made(), FolderProvider)
    assert isinstance(made(delivery="console"), ConsoleProvider)
    assert isinstance(made(delivery="smtp"), SMTPProvider)
    from pydantic import SecretStr

    sendgrid = made(delivery="sendgrid", sendgrid_api_key=SecretStr("SG.key"))
    assert isinstance(sendgrid, SendGridProvider)
    with pytest.raises(ConfigurationError, match="SENDGRID_API_KEY"):
        made(delivery="sendgrid", sendgrid_api_key=None)


# The base loop, through a scripted provider: the rules every provider inherits. ----


class Scripted(Provider):
    """Refuses any request holding an address in ``bad``, the way an API answers 400."""

    name = "scripted"

    def __init__(self, bad: set[str], *, name_culprits: bool, max_recipients: int = 10) -> None:
        self.bad = bad
        self.name_culprits = name_culprits
        self.max_recipients = max_recipients
        self.requests: list[list[str]] = []

    def send_chunk(self, batch: Batch) -> list[SendResult]:
        addresses = [r.email for r in batch.recipients]
        self.requests.append(addresses)
        culprits = {i: "bad address" for i, a in enumerate(addresses) if a in self.bad}
        if culprits:
            raise ChunkError("400", rejected=culprits if self.name_culprits else None)
        return [SendResult(r, "sent", message_id="m") for r in batch.recipients]


@pytest.mark.parametrize("name_culprits", [True, False])
def test_one_bad_address_never_fails_the_rest_of_its_chunk(name_culprits: bool) -> None:
    batch = make_batch(25)
    bad = {"reader3@example.com", "reader17@example.com"}
    provider = Scripted(bad, name_culprits=name_culprits)

    results = provider.send(batch)

    assert [r.recipient for r in results] == batch.recipients
    for result in results:
        expected = "failed" if result.recipient.email in bad else "sent"
        assert result.outcome == expected
    reason = "bad address" if name_culprits else "400"
    assert {r.error for r in results if r.outcome == "failed"} == {reason}
    if name_culprits:
        # One refused request per chunk holding culprits, then one for the others.
        assert len(provider.requests) == 3 + 2
    else:
        # Halving: far fewer requests than one per recipient.
        assert len(provider.requests) < 25


def test_a_retryable_chunk_error_retries_the_whole_chunk_only() -> None:
    class Flaky(Provider):
        max_recipients = 2
        calls = 0

        def send_chunk(self, batch: Batch) -> list[SendResult]:
            self.calls += 1
            if self.calls == 2:
                raise ChunkError("503", retryable=True, retry_after=7.0, maybe_sent=True)
            return [SendResult(r, "sent", message_id="m") for r in batch.recipients]

    results = Flaky().send(make_batch(5))

    assert [r.outcome for r in results] == ["sent", "sent", "retry", "retry", "sent"]
    assert [r.retry_after for r in results if r.outcome == "retry"] == [7.0, 7.0]
    assert all(r.maybe_sent for r in results if r.outcome == "retry")


def test_an_unexpected_exception_becomes_a_retry_to_reconcile() -> None:
    class Broken(Provider):
        def send_chunk(self, batch: Batch) -> list[SendResult]:
            raise KeyError("a bug after the request may have left")

    results = Broken().send(make_batch(2))

    assert [(r.outcome, r.maybe_sent) for r in results] == [("retry", True), ("retry", True)]


def test_a_configuration_error_escapes_only_while_nothing_was_sent() -> None:
    class Misconfigured(Provider):
        max_recipients = 1

        def __init__(self, fail_from_call: int) -> None:
            self.fail_from_call = fail_from_call
            self.calls = 0

        def send_chunk(self, batch: Batch) -> list[SendResult]:
            self.calls += 1
            if self.calls >= self.fail_from_call:
                raise ConfigurationError("the key was revoked")
            return [SendResult(r, "sent", message_id="m") for r in batch.recipients]

    with pytest.raises(ConfigurationError):
        Misconfigured(fail_from_call=1).send(make_batch(3))

    # Raising now would lose the first result, which did go out.
    results = Misconfigured(fail_from_call=2).send(make_batch(3))
    assert [r.outcome for r in results] == ["sent", "retry", "retry"]


def test_close_runs_even_when_a_chunk_fails() -> None:
    class Tracked(Provider):
        closed = False

        def send_chunk(self, batch: Batch) -> list[SendResult]:
            raise ConfigurationError("bad key")

        def close(self) -> None:
            self.closed = True

    provider = Tracked()
    with pytest.raises(ConfigurationError):
        provider.send(make_batch(1))
    assert provider.closed
