"""Rendering: therapist Markdown and our MJML layouts into compiled, shareable content."""

from __future__ import annotations

from nurture.rendering.compiler import CONFIRMATION_STEP, Renderer

__all__ = ["CONFIRMATION_STEP", "Renderer"]
