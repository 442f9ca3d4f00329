"""The ``nurture`` command: :mod:`~nurture.cli.main` parses, :mod:`~nurture.cli.commands` acts."""
