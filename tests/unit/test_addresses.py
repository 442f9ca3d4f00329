"""An address's canonical form and its keyed hash (nurture.mail.addresses)."""

from __future__ import annotations

import re

from pydantic import SecretStr

from nurture.mail.addresses import email_hash, email_hashes, normalise_email, suppression_keys
from nurture.settings import Settings


class TestEmailHash:
    def test_is_keyed_hex_and_normalised(self) -> None:
        digest = email_hash("k1", "Jane.Doe@Example.COM ")
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert digest == email_hash("k1", "jane.doe@example.com")
        assert digest != email_hash("k2", "jane.doe@example.com")
        assert digest != email_hash("k1", "john@example.com")
        assert "jane" not in digest

    def test_unicode_normal_forms_match(self) -> None:
        composed, decomposed = "jos\u00e9@example.com", "jose\u0301@example.com"
        assert normalise_email(composed) == normalise_email(decomposed)
        assert email_hash("k", composed) == email_hash("k", decomposed)

    def test_suppression_hashes_put_the_key_for_new_entries_first(self, settings: Settings) -> None:
        # Without SUPPRESSION_KEY: the oldest secret key first (it outlives rotations).
        hashes = email_hashes(settings, "jane@example.com")
        assert hashes == [
            email_hash("test-key-older", "jane@example.com"),
            email_hash("test-key-newest", "jane@example.com"),
        ]
        assert suppression_keys(settings) == ["test-key-older", "test-key-newest"]
        dedicated = settings.model_copy(update={"suppression_key": SecretStr("sk")})
        assert suppression_keys(dedicated) == ["sk", "test-key-newest", "test-key-older"]
        assert email_hashes(dedicated, "x@y.z")[0] == email_hash("sk", "x@y.z")
        empty = settings.model_copy(update={"suppression_key": SecretStr("")})
        assert suppression_keys(empty) == ["test-key-older", "test-key-newest"]
        assert email_hashes(["a", "b"], "x@y.z") == [email_hash(k, "x@y.z") for k in "ab"]
        assert email_hashes("a", "x@y.z") == [email_hash("a", "x@y.z")]
