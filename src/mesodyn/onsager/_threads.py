"""Static work splitting over CPU threads for the chunked autograd Functions of :mod:`mesodyn.onsager`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["in_threads"]


def in_threads(n_points: int, work, chunk: int, device: torch.device) -> list:
    """Run ``work(starts)`` over the chunk starts, split statically over ``torch.get_num_threads()`` threads.

    Why not ATen's own intra-op threads: a chunk takes some 40 small kernels, and each would end in a
    barrier of the two OpenMP threads; on a shared machine where the second core is busy, every barrier
    waits a scheduler time slice (measured: ~7 ms per kernel, 4x slower than one thread). Here each thread
    runs its own chunks with single-threaded kernels (torch ops release the GIL) and meets the others once.
    Thread ``i`` takes chunks ``i, i + T, ...``, and results are returned in thread order, so the outcome
    does not depend on timing.
    """
    starts = list(range(0, n_points, chunk))
    n_threads = min(torch.get_num_threads(), len(starts)) if device.type == "cpu" else 1
    previous = torch.get_num_threads()
    if n_threads <= 1:
        if device.type != "cpu" or previous == 1:
            return [work(starts)]
        # one chunk (e.g. a few hundred interpolation nodes): single-threaded kernels, no barriers
        torch.set_num_threads(1)
        try:
            return [work(starts)]
        finally:
            torch.set_num_threads(previous)
    torch.set_num_threads(1)  # kernels inside the workers: one thread each (new threads read this setting)
    def run(part):
        with torch.no_grad():  # grad mode is per thread; autograd is handled by the Function itself
            return work(part)

    try:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            return list(pool.map(run, [starts[i::n_threads] for i in range(n_threads)]))
    finally:
        torch.set_num_threads(previous)
