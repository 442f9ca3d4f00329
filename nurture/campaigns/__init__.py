"""The therapist's campaign files: loading (:mod:`.loader`) and validation (:mod:`.check`)."""

from __future__ import annotations

from nurture.campaigns.loader import load_catalogue, parse_delay, read_catalogue
from nurture.campaigns.model import (
    DEFAULT_FIRST_NAME_FALLBACK,
    NEWSLETTERS,
    Campaign,
    Catalogue,
    Newsletter,
    Step,
)
from nurture.campaigns.problems import Problem

__all__ = [
    "DEFAULT_FIRST_NAME_FALLBACK",
    "NEWSLETTERS",
    "Campaign",
    "Catalogue",
    "Newsletter",
    "Problem",
    "Step",
    "load_catalogue",
    "parse_delay",
    "read_catalogue",
]
