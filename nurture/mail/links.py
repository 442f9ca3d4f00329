"""Signed, person-free link ids for ``BASE_URL/l/{id}``: aggregate link counts.

With ``LINK_COUNTS`` on, every web link in an email's body is rewritten once, when the
step is compiled, to ``BASE_URL/l/{id}``. The id is the campaign, the step and the
link's target, signed with ``SECRET_KEYS`` under a salt of its own: it names a link,
never a person, so every reader's copy of an email carries the very same ids, and a
click can only ever be counted per link (per day), not per reader.

The target travels inside the signed id, so an email keeps working after the therapist
edits or removes the link in the file, and a forged or tampered id can never send a
visitor anywhere: it is refused (``/l/`` answers 404). Like the other tokens, ids signed
with a key stay valid while that key is listed in ``SECRET_KEYS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeSerializer

from nurture.exceptions import ConfigurationError, TokenError

SALT = "nurture.link"
#: The paths of ours that are never wrapped: personal links and the redirect itself.
PERSONAL_PATHS = ("/unsubscribe", "/preferences", "/confirm", "/l/")
_MAX_ID = 4096


@dataclass(frozen=True)
class Link:
    """What a link id names: a link of one step, identical for every reader."""

    campaign: str
    step: str
    target: str

    @property
    def key(self) -> str:
        """A short, stable name for the link within its step: a hash of its target."""
        return hashlib.sha256(self.target.encode()).hexdigest()[:16]


class LinkIds:
    """Makes and reads link ids; ``secret_keys`` newest first, as in ``SECRET_KEYS``."""

    def __init__(self, secret_keys: Sequence[str], base_url: str) -> None:
        if not secret_keys or any(not key for key in secret_keys):
            raise ConfigurationError("NURTURE_SECRET_KEYS: at least one non-empty key is needed")
        # itsdangerous wants the keys oldest first and signs with the last one.
        self._serializer = URLSafeSerializer(
            list(reversed(secret_keys)),
            salt=SALT,
            signer_kwargs={"digest_method": hashlib.sha256},
        )
        self.base_url = base_url.rstrip("/")

    def make(self, link: Link) -> str:
        """The id of ``link`` (URL-safe: letters, digits, ``-``, ``_`` and ``.``)."""
        return str(self._serializer.dumps([link.campaign, link.step, link.target]))

    def url(self, link: Link) -> str:
        """``BASE_URL/l/{id}`` for ``link``."""
        return f"{self.base_url}/l/{self.make(link)}"

    def read(self, link_id: str) -> Link:
        """The link a valid id names; raises :class:`TokenError` for anything else."""
        if not isinstance(link_id, str) or not link_id or len(link_id) > _MAX_ID:
            raise TokenError(reason="malformed")
        try:
            value = self._serializer.loads(link_id)
        except BadSignature:
            raise TokenError(reason="signature") from None
        except Exception:  # a signed but undecodable payload: treat as forged
            raise TokenError(reason="malformed") from None
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(part, str) and part for part in value)
            or not is_countable(value[2])
        ):
            raise TokenError(reason="malformed")
        return Link(value[0], value[1], value[2])

    def wrapper(self, campaign: str, step: str) -> Callable[[str], str]:
        """A function rewriting one target of this step to its ``/l/`` URL (or not at all)."""

        def wrap(target: str) -> str:
            if not is_countable(target) or self.is_personal(target):
                return target
            return self.url(Link(campaign, step, target))

        return wrap

    def is_personal(self, target: str) -> bool:
        """Whether ``target`` is one of our own personal links (never wrapped)."""
        if not target.startswith(self.base_url + "/"):
            return False
        path = target[len(self.base_url) :]
        return path.startswith(PERSONAL_PATHS)


def is_countable(target: str) -> bool:
    """Only web links are counted: ``http(s)://host...``; never ``mailto:``, ``tel:``, ``#``."""
    try:
        parts = urlsplit(target)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
