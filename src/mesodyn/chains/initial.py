"""Random initial conditions of the chain data sets, drawn exactly as the paper's generator draws them.

Per trial, from one ``numpy.random.default_rng(seed)`` stream and in this order:
``choice(arange(1, max_k + 1), n_modes, replace=False)``, ``uniform(0, 1, n_modes)``,
``uniform(0, 2π, n_modes)``. The field is ``u0(ξ) = Σ A_j sin(k_j ξ + φ_j) / norm`` on ``[0, 2π)``, with ``norm``
the population standard deviation of the raw sum at 1024 equispaced points (unit-std field).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SineDraws", "draw_sine_modes", "sine_field", "NORM_POINTS"]

NORM_POINTS = 1024
LENGTH = 2.0 * np.pi


@dataclass(frozen=True)
class SineDraws:
    """The random draws of a batch of trials: arrays of shape ``(trials, n_modes)`` and the norms ``(trials,)``."""

    k: np.ndarray
    amplitude: np.ndarray
    phase: np.ndarray
    norm: np.ndarray

    def __len__(self) -> int:
        return self.k.shape[0]

    def take(self, index) -> SineDraws:
        return SineDraws(self.k[index], self.amplitude[index], self.phase[index], self.norm[index])

    @staticmethod
    def concat(parts: list[SineDraws]) -> SineDraws:
        return SineDraws(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("k", "amplitude", "phase", "norm")))


def draw_sine_modes(rng: np.random.Generator, n_trials: int, *, n_modes: int = 3, max_k: int = 6,
                    k_offset: int = 0) -> SineDraws:
    """Draw ``n_trials`` trials in the paper's order, continuing the stream of ``rng``; ``k_offset`` (ours, default
    0) is added to every drawn wavenumber after the same draws."""
    if not 1 <= n_modes <= max_k:
        raise ValueError(f"n_modes ({n_modes}) must lie between 1 and max_k ({max_k})")
    ks, amps, phases = [], [], []
    wavenumbers = np.arange(1, max_k + 1)
    for _ in range(n_trials):
        ks.append(rng.choice(wavenumbers, n_modes, replace=False))
        amps.append(rng.uniform(0, 1, n_modes))
        phases.append(rng.uniform(0, 2 * np.pi, n_modes))
    k = np.array(ks, dtype=np.int64).reshape(n_trials, n_modes) + int(k_offset)
    amplitude = np.array(amps, dtype=np.float64).reshape(n_trials, n_modes)
    phase = np.array(phases, dtype=np.float64).reshape(n_trials, n_modes)
    grid = np.arange(NORM_POINTS) * (LENGTH / NORM_POINTS)
    norm = np.array([_raw(grid, k[i], amplitude[i], phase[i]).std() for i in range(n_trials)])
    return SineDraws(k, amplitude, phase, norm)


def _raw(xi: np.ndarray, k, amplitude, phase, derivative: bool = False) -> np.ndarray:
    total = np.zeros_like(xi, dtype=np.float64)
    for kj, aj, pj in zip(k, amplitude, phase):
        omega = 2 * np.pi * kj / LENGTH
        if derivative:
            total += aj * omega * np.cos(omega * xi + pj)
        else:
            total += aj * np.sin(omega * xi + pj)
    return total


def sine_field(draws: SineDraws, xi: np.ndarray, *, derivative: bool = False) -> np.ndarray:
    """The unit-std field u0 (or its analytic derivative u0') of every trial at positions ``xi``: ``(trials, len(xi))``."""
    return np.stack(
        [_raw(xi, draws.k[i], draws.amplitude[i], draws.phase[i], derivative) / draws.norm[i] for i in range(len(draws))]
    ) if len(draws) else np.zeros((0, len(xi)))
