"""The per-recipient hot paths of a newsletter, timed alone: token signing, building a
recipient, and building one full SendGrid request. Speed lives here, not in tests.

Run: ``python -m benchmarks.hot_paths`` (``make bench`` runs it first).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from nurture.mail.messages import Batch, Content, Sender
from nurture.mail.recipients import RecipientFactory
from nurture.mail.tokens import Tokens, new_public_id
from nurture.providers.sendgrid import SendGridProvider
from nurture.settings import load_settings


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f}/s"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(
            var_dir=Path(folder),
            secret_keys="bench-key-newest-0123456789abcdef,bench-key-older-0123456789abcdef",
            delivery="sendgrid",
            sendgrid_api_key=SecretStr("SG.bench"),
            _env_file=None,
        )
        tokens = Tokens.from_settings(settings)
        ids = [new_public_id() for _ in range(1000)]

        started = time.perf_counter()
        for _ in range(50):
            for pid in ids:
                tokens.make("unsubscribe", pid)
        print(f"tokens.make                 {_rate(50_000, time.perf_counter() - started)}")

        factory = RecipientFactory(settings, tokens)
        started = time.perf_counter()
        recipients = [
            factory.marketing(
                email=f"reader{i}@example.org",
                public_id=ids[i % 1000],
                first_name="Jane",
                fallback="there",
                outbox_id=i,
            )
            for i in range(20_000)
        ]
        print(f"RecipientFactory.marketing  {_rate(20_000, time.perf_counter() - started)}")

        content = Content(
            campaign="newsletters",
            step="bench",
            subject="A gentle note",
            preheader="For the darker months",
            html="<p>Hi</p>",
            text="Hi",
        )
        batch = Batch(content, Sender(settings.from_email, "Alex Morgan"), recipients[:1000])
        provider = SendGridProvider(settings)
        provider.build_request(batch)
        started = time.perf_counter()
        for _ in range(20):
            provider.build_request(batch)
        per_request = (time.perf_counter() - started) / 20
        print(f"SendGrid request, 1000 recipients  {per_request * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
