"""Keep freed host memory for reuse: glibc's default costs CPU training 15-20% of its speed.

glibc serves every allocation above its mmap threshold (128 KiB, rising to at most 32 MiB) with a fresh
``mmap`` and gives it back with ``munmap`` when freed. A training step allocates and frees the same large
activation and gradient buffers every time, so each step faults in all its pages anew (the kernel zeroes
every one of them). The page faults showed in a profile as ``fill_`` and pooling backward taking 20 ms for a
buffer that memory bandwidth fills in a few. ``mallopt`` makes every allocation come from the heap and keeps
what is freed there: a fast-cifar10 step went from 595-633 to 707-728 images/s on a 2-core AMD EPYC
(``benchmarks/train_step_formats.py --keep-host-memory``). The cost: the process keeps its peak heap until it
exits, which for a training process is its working set anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def keep_freed_host_memory() -> bool:
    """Have glibc's malloc serve large blocks from its heap and never trim it; once per process.

    Returns whether the setting took effect: False on other C libraries (macOS, Windows, musl), where the
    allocator keeps its own policy.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success. Zero mmap'd blocks: large buffers come from the heap too, where a freed
    # one is reused by the next step; the largest trim threshold: the heap is never handed back.
    no_mmap = libc.mallopt(_M_MMAP_MAX, 0) == 1
    no_trim = libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return no_mmap and no_trim
