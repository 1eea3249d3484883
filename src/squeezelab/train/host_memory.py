"""Keep freed host memory for reuse: with glibc's default a CPU training step faults its buffers in anew.

glibc serves every allocation above its mmap threshold (128 KiB, rising to at most 32 MiB) with a fresh
``mmap`` and gives it back with ``munmap`` when freed. A training step allocates and frees the same large
activation and gradient buffers every time, so each step faults in all their pages again (the kernel zeroes
every one). In a profile this showed as ``fill_`` and pooling backward taking 20 ms for a buffer that memory
bandwidth fills in a few. ``mallopt`` makes every allocation come from the heap and keeps what is freed there.
``benchmarks/train_step_formats.py`` with and without ``--keep-host-memory`` (2-core AMD EPYC Zen 4, two
runs each): the paper-style squeezenet_cifar's bf16 channels-last step 754-762 -> 993-1,114 images/s, NCHW
fp32 steps 1.2-1.7x faster; the fast-cifar10 model's bf16 channels-last step 547-659 -> 627-645 (one run
faster by 18%, the other slower by 5%: within this VM's noise). The cost: the process keeps its peak heap
until it exits, which for a training process is its working set anyway.
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
