"""Periodic Fourier grids with exact (zero-padding) dealiasing, batched over leading axes.

Coefficients use the *forward* normalisation, ``c_k = (1/n) Σ_j u_j exp(-i k x_j)``, so that the same
coefficients evaluate the same trigonometric polynomial on any finer grid: zero-padding is then a plain
copy into a larger, zeroed array. The Nyquist mode of every axis is dropped, as Dedalus' ``RealFourier``
basis does; the state therefore always holds a real trigonometric polynomial of degree < n/2.

Layouts (``K = n // 2``, the number of kept non-negative wavenumbers):

* 1-D: ``(..., K)`` for ``k = 0 .. K-1`` (the real-FFT half spectrum).
* 2-D: ``(..., 2K-1, K)`` for ``ky = 0 .. K-1, -(K-1) .. -1`` (FFT order, Nyquist row removed) and
  ``kx = 0 .. K-1``; grids are ``(..., y, x)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

__all__ = ["FourierGrid", "PaddedWork", "default_workers"]


def default_workers() -> int:
    """Threads for the FFTs: ``OMP_NUM_THREADS`` when set (Snakemake sets it from ``threads:``), else the
    CPUs this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _good_size(n: int) -> int:
    return int(sfft.next_fast_len(n, real=True))


@dataclass(frozen=True)
class FourierGrid:
    """A periodic grid of ``n`` points per axis (``ndim`` = 1 or 2) on ``[0, length)``.

    Parameters
    ----------
    n : int
        Points per axis (even, at least 4).
    length : float
        Period of every axis.
    ndim : int
        1 or 2.
    padded : int
        Points per axis of the grid on which products are evaluated. A product of ``p`` fields is
        alias-free on the kept modes when ``padded > (p + 1) (n/2 - 1)``; ``2 n`` (Dedalus' ``dealias=2``)
        covers cubic terms.
    workers : int
        Threads given to ``scipy.fft`` in the per-frame transforms; results do not depend on it.
    """

    n: int
    length: float = 2 * math.pi
    ndim: int = 1
    padded: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        if self.ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 or 2, got {self.ndim}.")
        if self.n < 4 or self.n % 2:
            raise ValueError(f"n (grid points per axis) must be even and at least 4, got {self.n}.")
        if not (math.isfinite(self.length) and self.length > 0):
            raise ValueError(f"length must be a positive finite number, got {self.length}.")
        if self.padded == 0:
            object.__setattr__(self, "padded", 2 * self.n)
        if self.padded < self.n or self.padded % 2:
            raise ValueError(f"padded must be even and at least n = {self.n}, got {self.padded}.")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}.")

    @staticmethod
    def dealiased_size(n: int, degree: int) -> int:
        """Smallest even fast FFT size on which a product of ``degree`` fields of ``n``-grid modes
        (Nyquist dropped) is alias-free on the kept modes: ``m > (degree + 1) (n/2 - 1)``."""
        m = max(n, (degree + 1) * (n // 2 - 1) + 1)
        while True:
            m = _good_size(m)
            if m % 2 == 0:
                return m
            m += 1

    # ------------------------------------------------------------------ geometry
    @property
    def kept(self) -> int:
        """Number of kept non-negative wavenumbers per axis, ``n // 2`` (Nyquist dropped)."""
        return self.n // 2

    @property
    def coeff_shape(self) -> tuple[int, ...]:
        K = self.kept
        return (K,) if self.ndim == 1 else (2 * K - 1, K)

    @property
    def x(self) -> np.ndarray:
        """Grid points ``length * j / n`` (computed as ``2π j / n`` for the default length, bit-equal to the
        reference grids)."""
        if self.length == 2 * math.pi:
            return 2 * np.pi * np.arange(self.n) / self.n
        return self.length * np.arange(self.n) / self.n

    def wavenumbers(self) -> tuple[np.ndarray, ...]:
        """Angular wavenumbers broadcastable against the coefficient layout: ``(k,)`` in 1-D, ``(ky, kx)`` in
        2-D."""
        K = self.kept
        scale = 2 * np.pi / self.length
        k = np.arange(K) * scale
        if self.ndim == 1:
            return (k,)
        ky = np.concatenate([np.arange(K), np.arange(-(K - 1), 0)]) * scale
        return (ky[:, None], k[None, :])

    def laplacian_symbol(self) -> np.ndarray:
        """Symbol of the Laplacian, ``-|k|²``, on the coefficient layout."""
        ks = self.wavenumbers()
        return -sum(k * k for k in ks)

    # ------------------------------------------------------------------ transforms
    def to_coefficients(self, u: np.ndarray) -> np.ndarray:
        """Forward-normalised coefficients of grid values ``u`` (..., n[, n]); the Nyquist modes are dropped."""
        u = np.asarray(u, dtype=np.float64)
        K = self.kept
        if self.ndim == 1:
            return sfft.rfft(u, axis=-1, norm="forward", workers=self.workers)[..., :K]
        c = sfft.rfft2(u, axes=(-2, -1), norm="forward", workers=self.workers)
        return np.concatenate([c[..., :K, :K], c[..., self.n - K + 1:, :K]], axis=-2)

    def to_grid(self, c: np.ndarray) -> np.ndarray:
        """Values of the coefficients ``c`` on the ``n``-point grid."""
        return _synthesize(self, np.asarray(c), self.n)

    def to_padded(self, c: np.ndarray) -> np.ndarray:
        """Values of the coefficients ``c`` on the ``padded``-point grid (where products are formed)."""
        return _synthesize(self, np.asarray(c), self.padded)

    def from_padded(self, g: np.ndarray) -> np.ndarray:
        """Coefficients of padded-grid values ``g``, truncated to the kept modes (the dealiasing projection)."""
        K, M, w = self.kept, self.padded, self.workers
        if self.ndim == 1:
            return sfft.rfft(g, axis=-1, norm="forward", workers=w)[..., :K]
        a = sfft.rfft(g, axis=-1, norm="forward", workers=w)[..., :K]
        a = sfft.fft(a, axis=-2, norm="forward", workers=w, overwrite_x=True)
        return np.concatenate([a[..., :K, :], a[..., M - K + 1:, :]], axis=-2)


def _synthesize(grid: FourierGrid, c: np.ndarray, m: int) -> np.ndarray:
    K, w = grid.kept, grid.workers
    lead = c.shape[: -grid.ndim]
    if grid.ndim == 1:
        buf = np.zeros((*lead, m // 2 + 1), dtype=np.complex128)
        buf[..., :K] = c
        return sfft.irfft(buf, n=m, axis=-1, norm="forward", workers=w)
    col = np.zeros((*lead, m, K), dtype=np.complex128)
    col[..., :K, :] = c[..., :K, :]
    col[..., m - K + 1:, :] = c[..., K:, :]
    a = sfft.ifft(col, axis=-2, norm="forward", workers=w)
    row = np.zeros((*lead, m, m // 2 + 1), dtype=np.complex128)
    row[..., :K] = a
    return sfft.irfft(row, n=m, axis=-1, norm="forward", workers=w)


class PaddedWork:
    """Preallocated buffers for forming dealiased products of one batch, with no allocation per call.

    The hot loop of the solvers calls :meth:`synthesize` and :meth:`project` thousands of times; fresh
    multi-megabyte temporaries there cost more in page faults than the FFTs themselves on small VMs, so
    every array is allocated once and the FFTs write into it (``numpy.fft`` with ``out=``, which also
    releases the GIL, so batches can run on threads). One instance serves one thread.

    Attributes
    ----------
    grid_values : ndarray (batch, M[, M])
        Filled by :meth:`synthesize`.
    product : ndarray (batch, M[, M])
        Scratch for the caller's pointwise products, the usual argument of :meth:`project`.
    """

    def __init__(self, grid: FourierGrid, batch: int):
        self.grid, self.batch = grid, batch
        K, M = grid.kept, grid.padded
        shape = (batch,) + (M,) * grid.ndim
        self.grid_values = np.empty(shape)
        self.product = np.empty(shape)
        half = (batch,) + (M,) * (grid.ndim - 1) + (M // 2 + 1,)
        self._pad = np.zeros(half, dtype=np.complex128)  # only the kept block is ever written: rest stays 0
        self._spec = np.empty(half, dtype=np.complex128)
        if grid.ndim == 2:
            self._col = np.zeros((batch, M, K), dtype=np.complex128)
            self._colt = np.empty((batch, M, K), dtype=np.complex128)

    def synthesize(self, c: np.ndarray) -> np.ndarray:
        """Values of coefficients ``c`` (batch, *coeff_shape) on the padded grid, in :attr:`grid_values`."""
        K, M = self.grid.kept, self.grid.padded
        pad = self._pad
        if self.grid.ndim == 1:
            pad[:, :K] = c
            return np.fft.irfft(pad, n=M, axis=-1, norm="forward", out=self.grid_values)
        col = self._col
        col[:, :K] = c[:, :K]
        col[:, M - K + 1:] = c[:, K:]
        # y transforms only on the K non-zero kx columns, then the x transforms of all rows.
        np.fft.ifft(col, axis=-2, norm="forward", out=self._colt)
        pad[:, :, :K] = self._colt
        return np.fft.irfft(pad, n=M, axis=-1, norm="forward", out=self.grid_values)

    def project(self, g: np.ndarray, out: np.ndarray, factor: np.ndarray | float = 1.0) -> np.ndarray:
        """``out = factor * P[g]``: coefficients of padded-grid values ``g`` truncated to the kept modes."""
        K, M = self.grid.kept, self.grid.padded
        spec = self._spec
        np.fft.rfft(g, axis=-1, norm="forward", out=spec)
        if self.grid.ndim == 1:
            np.multiply(spec[:, :K], factor, out=out)
            return out
        np.fft.fft(spec[:, :, :K], axis=-2, norm="forward", out=self._colt)
        out[:, :K] = self._colt[:, :K]
        out[:, K:] = self._colt[:, M - K + 1:]
        if not (np.isscalar(factor) and factor == 1.0):
            out *= factor
        return out
