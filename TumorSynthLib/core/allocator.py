"""Keep large freed blocks in the process instead of handing them back to the kernel (glibc).

The synthesis works on tumor boxes and ROIs of 10^5-10^6 voxels and makes dozens of temporary
arrays of 1-15 MB per tumor. glibc serves such blocks with ``mmap`` (above its dynamic threshold)
or trims them off the heap when they are freed, so every new temporary starts on fresh pages and
pays a page fault per 4 kB on first touch; in a virtual machine a fault costs microseconds. Measured
on this project's 2-core VM: a 1-voxel Gaussian of a 90^3 float32 box took 15-17 ms with
glibc's defaults and 4-6 ms with the settings below (a 64 mm tumor: ~20 % less time).

``tune_allocator`` raises the mmap threshold to its maximum (32 MB on 64-bit glibc) and the
trim threshold to ``TRIM_THRESHOLD_BYTES``: up to that much freed memory stays reserved by the
process for reuse (and glibc's adaptive thresholds are off from then on). It is process-wide,
so it is applied once, when the process first makes a tumor (``synthesize``, ``SynthesisJob``),
not on import; set the environment variable ``TUMORSYNTH_MALLOC_TUNING=0`` to keep the
allocator's defaults (other platforms and C libraries are left alone).
"""
from __future__ import annotations

import ctypes
import os
import sys

#: glibc ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap (glibc's maximum on 64-bit).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Freed memory kept by the process before glibc trims the heap.
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024
#: Environment variable that turns the tuning off ("0").
OPT_OUT_VARIABLE = "TUMORSYNTH_MALLOC_TUNING"

_applied: bool | None = None


def tune_allocator() -> bool:
    """Apply the settings of the module docstring once per process; True when glibc took them."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get(OPT_OUT_VARIABLE, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)              # the process's own symbols (libc among them): no library search
        if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
            return False                      # musl and others: their allocators differ
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                    and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except OSError:
        return False


__all__ = ["OPT_OUT_VARIABLE", "tune_allocator"]
