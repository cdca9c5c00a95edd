"""Conserved and dissipated quantities of the continuum equations, computed spectrally on grid data.

All integrals are over one period with the grid (trapezoidal = spectral) rule; derivatives are spectral.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mass", "kdv_hamiltonian", "allen_cahn_energy"]


def _wavenumbers(n: int, length: float) -> np.ndarray:
    k = np.fft.rfftfreq(n, d=length / (2 * np.pi * n))
    k[-1] = 0.0  # the Nyquist derivative of a real field is not defined; drop it
    return k


def _dx(u: np.ndarray, length: float, axis: int = -1) -> np.ndarray:
    n = u.shape[axis]
    k = _wavenumbers(n, length)
    shape = [1] * u.ndim
    shape[axis] = k.size
    return np.fft.irfft(1j * k.reshape(shape) * np.fft.rfft(u, axis=axis), n=n, axis=axis)


def mass(u: np.ndarray, *, length: float = 2 * math.pi, ndim: int = 1) -> np.ndarray:
    """``∫ u dx`` over the last ``ndim`` axes."""
    u = np.asarray(u, dtype=np.float64)
    axes = tuple(range(-ndim, 0))
    return u.mean(axis=axes) * length**ndim


def kdv_hamiltonian(u: np.ndarray, *, length: float = 2 * math.pi, nonlinear: float = 6.0,
                    power: int = 1, dispersion: float = 1.0) -> np.ndarray:
    """Hamiltonian of ``u_t + a u^p u_x + b u_xxx = 0``: ``H = ∫ b/2 u_x² − a u^{p+2}/((p+1)(p+2)) dx``
    (``u_t = ∂x δH/δu``), over the last axis. For KdV (a = 6, p = 1, b = 1): ``∫ u_x²/2 − u³``."""
    u = np.asarray(u, dtype=np.float64)
    ux = _dx(u, length)
    density = 0.5 * dispersion * ux**2 - nonlinear * u ** (power + 2) / ((power + 1) * (power + 2))
    return density.mean(axis=-1) * length


def allen_cahn_energy(u: np.ndarray, *, epsilon: float, length: float = 2 * math.pi, ndim: int = 1) -> np.ndarray:
    """Free energy ``∫ |∇u|²/2 + (u² − 1)²/(4ε²) dx`` of ``u_t = Δu + (u − u³)/ε² = −δE/δu``, over the last
    ``ndim`` axes; it never increases along solutions (``dE/dt = −∫ u_t² dx``)."""
    u = np.asarray(u, dtype=np.float64)
    axes = tuple(range(-ndim, 0))
    grad2 = sum(_dx(u, length, axis=a) ** 2 for a in axes)
    density = 0.5 * grad2 + (u * u - 1) ** 2 / (4 * epsilon**2)
    return density.mean(axis=axes) * length**ndim
