import platform
import subprocess
import sys
import textwrap

import pytest

from squeezelab.train.host_memory import keep_freed_host_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Page faults of allocating, writing and freeing a 64 MiB tensor, before and after the setting; in a child
# process, because the setting is process-wide and cannot be undone.
FAULTS = textwrap.dedent(
    """
    import resource, torch
    from squeezelab.train.host_memory import keep_freed_host_memory

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(16 * 2**20).fill_(1.0)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    default = min(faults() for _ in range(3))
    assert keep_freed_host_memory()
    # The heap grows until it holds a free block of this size: small allocations in between can split the
    # freed one, so that takes up to about seven rounds here. Training steps see the steady state after it.
    for _ in range(12):
        faults()
    print(default, min(faults() for _ in range(3)))
    """
)


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's")
def test_a_freed_buffer_is_reused_without_faulting_its_pages_in_again():
    out = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, check=True).stdout
    default, kept = map(int, out.split())
    pages = 64 * 2**20 // 4096
    assert default >= pages // 2  # glibc maps a fresh, unfaulted block for every allocation this large
    assert kept < pages // 20


def test_the_setting_is_applied_once_and_reports_whether_it_took():
    assert keep_freed_host_memory() is GLIBC
    assert keep_freed_host_memory() is GLIBC
