"""Giving freed memory back to the system during long training.

A training step allocates and frees tensors of varying sizes (a sparse id
table's gradient rows, a batch's padded inputs). The C library keeps what is
freed below its large-allocation threshold in its heap for reuse, and with
sizes that vary from step to step the heap's resident part creeps up: at
3×10^7 interactions the heap grew about 0.5 GiB every 800 steps while the
large tensors (id table, Adam's moments, the average) stayed as they were
(``benchmarks/README.md``). ``malloc_trim`` hands free pages back; with it
every 100 steps a generated sparse-Adam workload kept its heap at 0.12 GiB
instead of 0.17–0.27 GiB. Only glibc has it; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# Optimiser steps between two releases: a release walks the heap (milliseconds at a few GiB)
RELEASE_EVERY_STEPS = 100


@functools.cache
def _trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; whether the C library could (glibc only)."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
