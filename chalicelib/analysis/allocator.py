"""Keep freed memory in the process for the next block instead of handing it back.

Every block allocates a few arrays of about a megabyte (the float64 copy the
K-weighting filter works on, its output, the squares ...). glibc serves requests
that size from fresh mmap()s, or trims its heap back after each free, so every
block's arrays are new pages: the kernel zero-fills them on first touch, which
doubled the K-weighting filter's time on the 3-minute bench track. With higher
thresholds the same few megabytes are reused block after block; the peak memory
is unchanged (what is freed is reused, nothing more is kept than a block needs).
"""

from __future__ import annotations

import ctypes
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 << 20  # requests above this still get their own mapping
TRIM_THRESHOLD = 64 << 20  # free memory kept at the heap's top before trimming


@functools.cache
def reuse_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where the C
    library has no mallopt (musl, macOS): nothing changes there but speed."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
