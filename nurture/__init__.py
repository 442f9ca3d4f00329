"""nurture: email nurture sequences and newsletters for a therapist's practice."""

__version__ = "0.1.0"
