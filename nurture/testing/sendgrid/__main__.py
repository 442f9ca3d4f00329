"""``python -m nurture.testing.sendgrid``: the fake SendGrid in a process of its own.

A benchmark runs it this way so that the fake does not share the sender's GIL. It
prints its URL on the first line, serves until SIGTERM or Ctrl-C, then prints a JSON
line of what it received: ``{"requests": ..., "recipients": ...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading

from nurture.testing.sendgrid.server import FakeSendGrid


def main(argv: list[str] | None = None) -> None:
    """Serves the fake on its own until interrupted; prints its URL first."""
    parser = argparse.ArgumentParser(
        prog="python -m nurture.testing.sendgrid",
        description="A fake SendGrid Mail Send API on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key")
    parser.add_argument("--validate", choices=["full", "sample"], default="sample")
    args = parser.parse_args(argv)
    fake = FakeSendGrid(
        api_key=args.api_key,
        validate=args.validate,
        record="summary",
        host=args.host,
        port=args.port,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with fake:
        print(fake.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
        print(
            json.dumps({"requests": fake.requests_count, "recipients": fake.recipient_count}),
            flush=True,
        )


if __name__ == "__main__":
    main()
