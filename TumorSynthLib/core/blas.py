"""One OpenBLAS thread while a tumor is made.

The synthesis multiplies only small matrices (RECIST projections of a tumor's contour points
on 24 directions, the shape's control-grid spline, 3 x 3 rotations), yet numpy's and scipy's
OpenBLAS split those over every core and then keep their threads spinning, which takes a core
from the work itself and from anything else running. Measured for a 64 mm liver tumor on this
2-core machine next to a training run: 0.21-0.27 s per tumor with OpenBLAS's 2 threads,
0.15-0.17 s with one (CPU time 0.34 s vs 0.15 s).

``single_threaded_blas()`` limits the OpenBLAS libraries loaded in the process (threadpoolctl;
torch's own thread pools are not touched) and restores them on exit. Without threadpoolctl it
does nothing.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

try:
    from threadpoolctl import ThreadpoolController
except ImportError:                      # a declared dependency; without it the limit is a no-op
    ThreadpoolController = None

_controller: Any = None
_lock = threading.Lock()
_depth = 0              # callers inside the limit (threads of a web server, nested calls)
_limiter: Any = None    # threadpoolctl's limiter, restored when the last caller leaves


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Context: numpy's / scipy's OpenBLAS use one thread inside (see the module docstring).
    Safe for concurrent and nested use: the first caller in sets the limit, the last one out
    restores the original thread counts."""
    global _depth, _limiter
    controller = _openblas()
    if controller is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _limiter = controller.limit(limits=1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None


def _openblas() -> Any:
    """The OpenBLAS thread pools of the process (threadpoolctl), found once; None without them."""
    global _controller
    if _controller is None:
        if ThreadpoolController is None:
            _controller = False
        else:
            found = ThreadpoolController().select(internal_api="openblas")
            _controller = found if found.lib_controllers else False
    return _controller or None


__all__ = ["single_threaded_blas"]
