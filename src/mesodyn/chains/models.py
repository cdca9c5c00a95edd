"""Chain models with the paper's parameters and its long-wave scaling.

A ring of ``n_sites`` unit masses with lattice spacing 1; ``ε = 2π / n_sites``. Slow variables:
``ξ = ε (n − c t)``, ``τ = ε³ t``, ``u = r / ε²``. One slow step ``dt_slow`` (in τ) is ``substeps`` Verlet steps
of ``dt_chain = dt_slow / (ε³ · substeps)`` in lab time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from mesodyn.chains.integrators import FORCE_FENE, FORCE_POLYNOMIAL

__all__ = ["ChainModel", "FPUTChain", "FENEChain", "chain_from_config"]


@dataclass(frozen=True, kw_only=True)
class ChainModel:
    """Common part of the chain models (see the module docstring for the scaling)."""

    n_sites: int
    c: float = 1.0
    dt_slow: float
    t_final: float
    save_every: int = 10
    substeps: int | Literal["auto"] = "auto"
    max_c_dt: float = 0.2
    n_modes: int = 3
    max_k: int = 6
    amplitude: float = 1.0  # ours (out-of-distribution tests): the initial field times this (the paper's: 1)
    k_offset: int = 0       # ours: every drawn wavenumber plus this (the paper's: 0)

    form: ClassVar[str]
    force_kind: ClassVar[int]
    name: ClassVar[str]

    def __post_init__(self) -> None:
        if self.n_sites < 4:
            raise ValueError(f"n_sites must be at least 4, got {self.n_sites}")
        for key in ("c", "dt_slow", "t_final", "max_c_dt", "amplitude"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a positive finite number, got {value}")
        if self.substeps != "auto" and not (isinstance(self.substeps, int) and self.substeps >= 1):
            raise ValueError(f"substeps must be a positive integer or 'auto', got {self.substeps!r}")
        if not isinstance(self.save_every, int) or self.save_every < 1:
            raise ValueError(f"save_every must be a positive integer, got {self.save_every!r}")
        if not 1 <= self.n_modes <= self.max_k:
            raise ValueError(f"n_modes ({self.n_modes}) must lie between 1 and max_k ({self.max_k})")
        if not (isinstance(self.k_offset, int) and not isinstance(self.k_offset, bool) and self.k_offset >= 0):
            raise ValueError(f"k_offset must be a non-negative integer, got {self.k_offset!r}")
        if 2 * (self.max_k + self.k_offset) >= self.n_sites:
            # the chain's sites resolve modes below n_sites/2 only: a higher one aliases onto a lower one
            raise ValueError(f"max_k + k_offset ({self.max_k + self.k_offset}) must be below the chain's Nyquist "
                             f"mode n_sites/2 ({self.n_sites / 2:g})")
        if self.n_slow_steps % self.save_every:
            raise ValueError(
                f"t_final/dt_slow = {self.n_slow_steps} slow steps is not a multiple of save_every={self.save_every}"
            )

    @property
    def epsilon(self) -> float:
        return 2.0 * math.pi / self.n_sites

    @property
    def length(self) -> float:
        return 2.0 * math.pi

    @property
    def n_slow_steps(self) -> int:
        steps = round(self.t_final / self.dt_slow)
        if abs(steps * self.dt_slow - self.t_final) > 1e-9 * self.t_final:
            raise ValueError(f"t_final={self.t_final} is not a whole number of dt_slow={self.dt_slow} steps")
        return steps

    @property
    def n_frames(self) -> int:
        return self.n_slow_steps // self.save_every + 1

    @property
    def substeps_effective(self) -> int:
        """Verlet steps per slow step; ``auto`` is the paper's rule: the fewest with ``c · dt_chain ≤ max_c_dt``."""
        if self.substeps != "auto":
            return int(self.substeps)
        return max(1, math.ceil((self.dt_slow / self.epsilon**3) / (self.max_c_dt / self.c)))

    @property
    def dt_chain(self) -> float:
        return self.dt_slow / (self.epsilon**3 * self.substeps_effective)

    def force_params(self) -> np.ndarray:
        raise NotImplementedError

    def bound(self) -> float:
        """Rejection threshold in the kernel's units."""
        raise NotImplementedError

    def potential(self, r: np.ndarray) -> np.ndarray:
        """Bond potential Φ(r) with Φ′ = F, Φ(0) = 0."""
        raise NotImplementedError

    def hamiltonian(self, state: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """Total energy ``Σ p²/2 + Φ(r_n)`` per chain (last axis: sites).

        In strain form the momenta are recovered from ``ṙ_n = p_{n+1} − p_n`` up to their (conserved) mean, which
        is dropped: the value differs from the true energy by a constant of motion.
        """
        if self.form == "strain":
            r = state
            p = np.cumsum(velocity, axis=-1) - velocity  # p_n − p_0 = Σ_{m<n} ṙ_m
            p = p - p.mean(axis=-1, keepdims=True)
        else:
            r = np.roll(state, -1, axis=-1) - state
            p = velocity
        return 0.5 * (p**2).sum(axis=-1) + self.potential(r).sum(axis=-1)

    def attrs(self) -> dict[str, Any]:
        """Every physical and numerical parameter, for the netCDF global attributes."""
        out = {"model": self.name, "state_form": self.form, **asdict(self)}
        out.update(
            epsilon=self.epsilon,
            length=self.length,
            substeps_effective=self.substeps_effective,
            dt_chain=self.dt_chain,
            n_slow_steps=self.n_slow_steps,
            n_frames=self.n_frames,
            integrator="velocity Verlet (Stoermer-Verlet), fixed dt_chain, force reused between substeps",
        )
        return out


@dataclass(frozen=True, kw_only=True)
class FPUTChain(ChainModel):
    """FPUT α–β chain in strain form, F(r) = c² r + α r² + β r³ (α = β = 0: harmonic chain).

    Paper: N = 128, c = α = 1, β = 0, dt_slow = 1e-3, 50 substeps, τ ∈ [0, 1], reject if max|u| > 20.
    """

    n_sites: int = 128
    alpha: float = 1.0
    beta: float = 0.0
    dt_slow: float = 1.0e-3
    t_final: float = 1.0
    substeps: int | Literal["auto"] = 50
    u_bound: float = 20.0

    form: ClassVar[str] = "strain"
    force_kind: ClassVar[int] = FORCE_POLYNOMIAL
    name: ClassVar[str] = "fput"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.u_bound) and self.u_bound > 0):
            raise ValueError(f"u_bound must be positive, got {self.u_bound}")

    def force_params(self) -> np.ndarray:
        return np.array([self.c**2, self.alpha, self.beta], dtype=np.float64)

    def bound(self) -> float:
        return self.u_bound * self.epsilon**2

    def potential(self, r: np.ndarray) -> np.ndarray:
        return self.c**2 * r**2 / 2 + self.alpha * r**3 / 3 + self.beta * r**4 / 4

    def attrs(self) -> dict[str, Any]:
        return {**super().attrs(), "force": "F(r) = c^2 r + alpha r^2 + beta r^3"}


@dataclass(frozen=True, kw_only=True)
class FENEChain(ChainModel):
    """FENE chain in displacement form, F(r) = H r / (1 − (r/R)²), H = c², R = R_over_eps2 · ε².

    Paper: N = 209, c = 1, R = 50 ε², dt_slow = 5e-4, automatic substeps (c·dt ≤ 0.2: 93), τ ∈ [0, 0.5],
    reject if max|r|/R > 0.9 after a slow step.
    """

    n_sites: int = 209
    R_over_eps2: float = 50.0
    dt_slow: float = 5.0e-4
    t_final: float = 0.5
    r_bound: float = 0.9

    form: ClassVar[str] = "displacement"
    force_kind: ClassVar[int] = FORCE_FENE
    name: ClassVar[str] = "fene"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.r_bound < 1:
            raise ValueError(f"r_bound must lie in (0, 1), got {self.r_bound}")
        if not self.R_over_eps2 > 0:
            raise ValueError(f"R_over_eps2 must be positive, got {self.R_over_eps2}")

    @property
    def H(self) -> float:
        return self.c**2

    @property
    def R(self) -> float:
        return self.R_over_eps2 * self.epsilon**2

    def force_params(self) -> np.ndarray:
        return np.array([self.H, self.R, 0.0], dtype=np.float64)

    def bound(self) -> float:
        return self.r_bound

    def potential(self, r: np.ndarray) -> np.ndarray:
        return -0.5 * self.H * self.R**2 * np.log1p(-((r / self.R) ** 2))

    def attrs(self) -> dict[str, Any]:
        return {**super().attrs(), "H": self.H, "R": self.R, "force": "F(r) = H r / (1 - (r/R)^2)"}


_MODELS = {"fput": FPUTChain, "fene": FENEChain}


def chain_from_config(name: str, params: dict[str, Any]) -> ChainModel:
    """Build a chain model from its config section (keys not describing the chain, e.g. n_samples, are ignored)."""
    cls = _MODELS[name]
    fields_ = {f for f in cls.__dataclass_fields__}
    return cls(**{k: v for k, v in params.items() if k in fields_})
