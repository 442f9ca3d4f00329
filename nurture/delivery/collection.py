"""Python's cyclic garbage collector, kept out of the way of a long dispatch pass.

A pass over a newsletter makes some ten thousand short-lived containers per batch (rows,
recipients, their dicts, the request body). With the default first threshold of 700
allocations the collector runs a dozen times per batch, and its older generations,
filled by those survivors of a few milliseconds, trigger full collections that walk
every object of the process: measured, a third of the CPU of a million-email pass.
Nothing a pass makes lives in a reference cycle for long, so during a pass the first
threshold is raised; the collector still runs, a few times per hundred thousand
emails, and memory stays flat.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: Allocations between two young collections during a pass (Python's default: 700).
PASS_THRESHOLD = 20_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raises the collector's first threshold for the duration of the block.

    Process-wide, as the collector is; nested or concurrent blocks (dispatchers of
    several engines in one process) restore the threshold when the last one ends.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], PASS_THRESHOLD), *_saved[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
