"""Freed heap memory goes back to the system where the C library allows it (glibc)."""

import ctypes
import ctypes.util
import re

import pytest

from esrgraph.training.memory import release_free_memory

libc_name = ctypes.util.find_library("c")
glibc = libc_name is not None and hasattr(ctypes.CDLL(libc_name), "gnu_get_libc_version")


def heap_kib() -> int:
    """Resident KiB of this process's main heap."""
    total, current = 0, False
    for line in open("/proc/self/smaps"):
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            current = line.split()[-1] == "[heap]"
        elif current and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not glibc, reason="malloc_trim is glibc's")
def test_free_blocks_in_the_middle_of_the_heap_are_given_back():
    libc = ctypes.CDLL(libc_name)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(96 * 1024) for _ in range(2000)]  # under the mmap threshold: the heap holds them
    for block in blocks:
        ctypes.memset(block, 1, 96 * 1024)  # touched: resident
    kept = blocks[9::10]  # every tenth stays: the freed ones sit between them, so the heap cannot shrink
    for block in set(blocks) - set(kept):
        libc.free(block)
    before = heap_kib()
    assert release_free_memory()
    after = heap_kib()
    freed = 1800 * 96
    assert before - after > 0.8 * freed, (before, after)  # most of the 169 MB of free blocks went back
    for block in kept:
        libc.free(block)
