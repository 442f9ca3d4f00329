"""``nurture preview``: each step rendered for a sample subscriber, as files.

The sample recipient carries made-up tokens (``SAMPLE-TOKEN``), never a real
subscriber's; the headers are the ones a real send carries (List-Unsubscribe with its
https and mailto forms, and List-Unsubscribe-Post for one-click).
"""

from __future__ import annotations

from pathlib import Path

from nurture.campaigns.model import Catalogue
from nurture.mail.messages import Batch, Content, Recipient, Sender
from nurture.mail.recipients import first_name_value
from nurture.rendering.compiler import Renderer
from nurture.settings import Settings

SAMPLE_TOKEN = "SAMPLE-TOKEN"
SAMPLE_FIRST_NAME = "Sam"
SAMPLE_EMAIL = "sample@example.com"


def sample_recipient(settings: Settings, *, fallback: str = "there") -> Recipient:
    """A made-up subscriber with sample links and the real list headers' shape."""
    unsubscribe = f"{settings.base_url}/unsubscribe/{SAMPLE_TOKEN}"
    return Recipient(
        email=SAMPLE_EMAIL,
        values={
            "first_name": first_name_value(SAMPLE_FIRST_NAME, fallback),
            "unsubscribe_url": unsubscribe,
            "preferences_url": f"{settings.base_url}/preferences/{SAMPLE_TOKEN}",
            "confirm_url": f"{settings.base_url}/confirm/{SAMPLE_TOKEN}",
        },
        headers={
            "List-Unsubscribe": (
                f"<{unsubscribe}>, "
                f"<mailto:unsubscribe+{SAMPLE_TOKEN}@{settings.unsubscribe_domain}>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def sender_for(settings: Settings, catalogue: Catalogue, campaign: str) -> Sender:
    """The From and Reply-To a campaign's mail goes out with: :meth:`Catalogue.sender`."""
    return catalogue.sender(campaign, settings)


def write_preview(
    settings: Settings,
    catalogue: Catalogue,
    campaign: str,
    step: str | None,
    out_dir: Path,
) -> list[Path]:
    """Writes ``<campaign>/<step>.{mjml,html,txt,eml}`` under ``out_dir``; returns the paths.

    ``step=None`` previews every step (every newsletter for ``"newsletters"``). Raises
    :class:`~nurture.exceptions.CampaignError` for an unknown campaign or step.
    """
    renderer = Renderer(settings, catalogue)
    steps = [step] if step is not None else catalogue.step_slugs(campaign)
    recipient = sample_recipient(settings, fallback=catalogue.first_name_fallback(campaign))
    sender = sender_for(settings, catalogue, campaign)
    folder = out_dir / campaign
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for slug in steps:
        content = renderer.compile(campaign, slug)
        written.extend(
            _write(folder, slug, renderer.mjml_source(campaign, slug), content, sender, recipient)
        )
    return written


def _write(
    folder: Path, slug: str, mjml: str, content: Content, sender: Sender, recipient: Recipient
) -> list[Path]:
    html, text = content.personalise(recipient.values)
    message = Batch(content, sender, [recipient]).mime(recipient)
    files = {
        folder / f"{slug}.mjml": mjml.encode("utf-8"),
        folder / f"{slug}.html": html.encode("utf-8"),
        folder / f"{slug}.txt": text.encode("utf-8"),
        folder / f"{slug}.eml": message.as_bytes(),
    }
    for path, data in files.items():
        path.write_bytes(data)
    return list(files)
