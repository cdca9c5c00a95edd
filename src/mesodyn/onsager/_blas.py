"""One BLAS thread for the compiled kernels' small matrix products.

The kernels of :mod:`._nodes64` and :mod:`._nonlocal_kernels` multiply matrices of a few hundred rows by 64 x 64
weights with ``np.dot``, which Numba sends to SciPy's BLAS. A wheel's SciPy carries its own OpenBLAS, whose thread
count follows ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` (the workflow sets them per job) and otherwise is the
number of cores, whatever ``torch.set_num_threads`` says. Products this small do not gain from threads, and on a
shared machine each multi-threaded product waits for a busy core: measured with a workflow running beside it, one
1-D SpecOnsNet step at batch 1 spent 1.7 ms per table in the node kernels with OpenBLAS's two threads against
0.23 ms with one. :func:`one_thread` sets SciPy's OpenBLAS to one thread for the length of a kernel call and gives
the caller's setting back after it (two calls into the library, about 1 us).

Where SciPy's BLAS is not a bundled OpenBLAS (a conda SciPy on MKL or a system BLAS), nothing is changed: set that
library's threads (for example ``OMP_NUM_THREADS=1``) for the same effect.
"""

from __future__ import annotations

import ctypes
import glob
import os

__all__ = ["one_thread", "blas_threads"]

# (library file patterns relative to SciPy's site-packages folder, symbol prefix): the layouts of SciPy's wheels
# (Linux and Windows: scipy.libs/, macOS: scipy/.dylibs/) and an OpenBLAS without SciPy's symbol prefix
_PATTERNS = ("scipy.libs/*openblas*", "scipy/.dylibs/*openblas*")
_PREFIXES = ("scipy_openblas_", "openblas_")


def _find():
    """``(get, set)`` of SciPy's OpenBLAS thread count, or ``None`` where it is not found."""
    try:
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401 (loads the library the kernels call, as Numba does)
    except ImportError:  # pragma: no cover (SciPy is a dependency of Numba's np.dot)
        return None
    site = os.path.dirname(os.path.dirname(scipy.__file__))
    for pattern in _PATTERNS:
        for path in sorted(glob.glob(os.path.join(site, pattern))):
            try:
                lib = ctypes.CDLL(path)
            except OSError:  # pragma: no cover (a file of another platform)
                continue
            for prefix in _PREFIXES:
                get = getattr(lib, prefix + "get_num_threads", None)
                put = getattr(lib, prefix + "set_num_threads", None)
                if get is not None and put is not None:
                    get.restype, put.restype, put.argtypes = ctypes.c_int, None, [ctypes.c_int]
                    return get, put
    return None  # pragma: no cover (SciPy from conda or a distribution)


_CONTROL = _find()


def blas_threads() -> int | None:
    """The thread count of SciPy's OpenBLAS now, or ``None`` where it cannot be read."""
    return None if _CONTROL is None else int(_CONTROL[0]())


class _OneThread:
    """Context: SciPy's OpenBLAS on one thread inside, the previous count restored on leaving (not re-entrant
    across threads: the count is the library's, for the whole process)."""

    __slots__ = ("_previous",)

    def __enter__(self):
        self._previous = None
        if _CONTROL is not None:
            previous = _CONTROL[0]()
            if previous != 1:
                self._previous = previous
                _CONTROL[1](1)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            _CONTROL[1](self._previous)
        return False


def one_thread() -> _OneThread:
    """``with one_thread(): ...``: SciPy's OpenBLAS on one thread for the block."""
    return _OneThread()
