"""Coarse-graining of chain trajectories into mesoscopic fields in the co-moving frame.

At lab time t, site n sits at ``ξ_n = ε (n − c t)`` (mod 2π) and carries ``u_n = r_n / ε²``. The field on the
uniform grid ``x_j = 2π j / n_grid`` is a periodic interpolation of those values:

- ``linear`` (the paper's choice): np.interp semantics on the sorted, periodically extended sites;
- ``cubic``: periodic cubic spline through the sites;
- ``fourier``: band-limited (trigonometric) interpolation. The sites are uniformly spaced (spacing ε = 2π/N), so
  this is exact for fields with no content above the chain's Nyquist mode.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.interpolate import CubicSpline

__all__ = ["METHODS", "check_grid", "site_positions", "interpolate_periodic", "coarse_grain"]

METHODS = ("linear", "cubic", "fourier")
Method = Literal["linear", "cubic", "fourier"]


def check_grid(n_grid: int, *, max_k: int | None = None) -> None:
    """Raise ``ValueError`` unless ``n_grid`` is a grid the fields can be coarse-grained onto: even (the spectral
    models pair every mode k with -k and hold the Nyquist mode n_grid/2 apart) and, given the initial
    condition's highest mode ``max_k``, fine enough to resolve it (``max_k < n_grid/2``)."""
    if n_grid % 2:
        raise ValueError(f"n_grid = {n_grid} must be even (the spectral models and solvers need the Nyquist mode)")
    if max_k is not None and 2 * max_k >= n_grid:
        raise ValueError(f"n_grid = {n_grid} resolves modes below {n_grid // 2} only, but the initial condition "
                         f"draws up to max_k = {max_k}")


def site_positions(n_sites: int, t_lab: np.ndarray, *, c: float = 1.0) -> np.ndarray:
    """Unwrapped co-moving positions ``ε n − ε c t`` of every site at each lab time: ``(time, site)``."""
    eps = 2.0 * np.pi / n_sites
    return eps * np.arange(n_sites)[None, :] - eps * c * np.asarray(t_lab, dtype=np.float64)[:, None]


def interpolate_periodic(values: np.ndarray, positions: np.ndarray, n_grid: int, *, method: Method = "linear",
                         length: float = 2.0 * np.pi) -> np.ndarray:
    """Interpolate periodic samples ``values[..., site]`` at ``positions[site]`` onto ``n_grid`` uniform points.

    ``positions`` may be unwrapped; they are reduced modulo ``length``. All leading axes of ``values`` share the
    positions (one frame of an ensemble), so the weights are computed once.
    """
    if method not in METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; choose one of {', '.join(METHODS)}")
    values = np.asarray(values, dtype=np.float64)
    grid = np.arange(n_grid) * (length / n_grid)
    wrapped = np.mod(positions, length)
    if method == "fourier":
        return _fourier(values, positions, n_grid, length)
    order = np.argsort(wrapped, kind="stable")
    xp = wrapped[order]
    fp = values[..., order]
    xp_ext = np.concatenate([xp[-1:] - length, xp, xp[:1] + length])
    fp_ext = np.concatenate([fp[..., -1:], fp, fp[..., :1]], axis=-1)
    if method == "cubic":
        spline = CubicSpline(np.concatenate([xp, xp[:1] + length]),
                             np.concatenate([fp, fp[..., :1]], axis=-1), axis=-1, bc_type="periodic")
        return spline(np.mod(grid - xp[0], length) + xp[0])
    # linear, with np.interp's arithmetic: f_j + slope * (x - x_j)
    j = np.searchsorted(xp_ext, grid, side="right") - 1
    j = np.clip(j, 0, xp_ext.size - 2)
    slope = (fp_ext[..., j + 1] - fp_ext[..., j]) / (xp_ext[j + 1] - xp_ext[j])
    return slope * (grid - xp_ext[j]) + fp_ext[..., j]


def _fourier(values: np.ndarray, positions: np.ndarray, n_grid: int, length: float) -> np.ndarray:
    n = values.shape[-1]
    spacing = length / n
    if not np.allclose(np.diff(positions), spacing, rtol=0, atol=1e-9 * length):
        raise ValueError("fourier interpolation needs uniformly spaced sites")
    coeffs = np.fft.rfft(values, axis=-1)
    k = np.arange(coeffs.shape[-1])
    coeffs = coeffs * np.exp(-2j * np.pi * k * positions[0] / length)
    if n % 2 == 0 and n_grid > n:
        # the site Nyquist mode is the real cosine through the samples; on the finer grid it is an ordinary mode
        # whose rfft coefficient carries half the amplitude
        coeffs[..., -1] *= 0.5
    out_modes = n_grid // 2 + 1
    padded = np.zeros((*values.shape[:-1], out_modes), dtype=complex)
    m = min(out_modes, coeffs.shape[-1])
    padded[..., :m] = coeffs[..., :m]
    return np.fft.irfft(padded, n=n_grid, axis=-1) * (n_grid / n)


def coarse_grain(strain: np.ndarray, t_lab: np.ndarray, *, epsilon: float, c: float, n_grid: int,
                 method: Method = "linear", chunk: int = 64) -> np.ndarray:
    """Fields ``u(sample, time, x)`` from strains ``r(sample, time, site)`` (u = r / ε² at ξ_n, interpolated)."""
    n_samples, n_frames, n_sites = strain.shape
    positions = site_positions(n_sites, t_lab, c=c)
    out = np.empty((n_samples, n_frames, n_grid))
    for frame in range(n_frames):
        u_sites = strain[:, frame] / epsilon**2
        out[:, frame] = interpolate_periodic(u_sites, positions[frame], n_grid, method=method)
    return out
