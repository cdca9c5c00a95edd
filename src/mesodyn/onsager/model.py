"""SpecOnsNet: the spectral Onsager network ``du/dt = -(M + W) dV/du`` on a periodic 1-D or 2-D grid.

The grid (``shape``, ``length``) always comes from the data's coordinates. A model is described by a
JSON-able config (``model.config``) and rebuilt from it by :func:`build_model`; weights travel as a plain
``state_dict`` (loadable with ``torch.load(..., weights_only=True)``), never pickled modules.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mesodyn.onsager.energy import LOCAL_DERIVATIVES, FreeEnergy
from mesodyn.onsager.operators import FourierOperators, SpectralGrid
from mesodyn.onsager.steppers import STEPPERS, step as _step

__all__ = ["SpecOnsNetConfig", "SpecOnsNet", "model_config", "build_model", "check_model_config", "GAUGES",
           "OPERATOR_CHOICES", "grid_from_coordinates"]

GAUGES = ("none", "unit_b")
OPERATOR_CHOICES = ("both", "M", "W")


@dataclasses.dataclass(frozen=True)
class SpecOnsNetConfig:
    """Architecture of a :class:`SpecOnsNet`; validates itself.

    Parameters
    ----------
    shape
        Grid points per axis, ``(n,)`` or ``(ny, nx)``, from the data.
    length
        Domain length per axis, from the data's coordinates (``n * spacing``).
    dt
        Default time step (the data's frame spacing).
    stepper
        ``"euler"`` (paper), ``"sbdf1"`` (paper) or ``"stabilized"`` (provably energy-dissipating).
    operators
        ``"both"`` (M and W), ``"M"`` (dissipative only) or ``"W"`` (conservative only).
    conserved
        ``m(0) = 0``: the dissipation conserves the mean of the field.
    gauge
        ``"none"`` or ``"unit_b"``: fix ``b = 1``, which removes the scale freedom
        ``(M, W, V) -> (M/c, W/c, c V)`` of the factorization.
    hidden
        Width of the pointwise MLP ``F``.
    nonlocal_modes
        Lowest Fourier modes per axis fed to ``V_nl`` (0: no ``V_nl``).
    local_derivative
        ``"exact"`` (default: ``F'`` in closed form at every grid point) or ``"interpolant"``: ``F'`` from exact
        values at a few hundred nodes on the batch's range, through a piecewise polynomial whose error is
        measured at every call and kept below 1e-6 (float32) or 1e-12 (float64) of ``max |F'|``, else the exact
        path is used (:mod:`mesodyn.onsager.interpolant`). The same model; 10-20x faster training on a CPU
        (``benchmarks/results/onsager.md``).
    init_a, init_b, init_m
        Initial ``a``, ``b`` and symbol value ``m(k)``.
    init_m_cap
        Explicit-Euler-stable start: the initial ``m(k)`` is ``min(init_m, init_m_cap / (dt (a + b |k|²)))``, so
        one explicit Euler step of the initial model changes no mode by more than the fraction ``init_m_cap``
        through the quadratic part of ``V``. Without the cap (``None``) the high modes of data with a large saved
        ``dt`` (the chains: ``dt · |k|² ≈ 160`` at the FPUT grid's Nyquist mode) are amplified a hundredfold per
        step and training starts from a diverging rollout (measured with the default config's budget: FPUT
        training loss 5e13 and FENE 10 after 400 steps; with the cap 0.1, after 150 steps: FPUT 0.015, FENE
        3e-3, Allen–Cahn 4e-5 validation loss). Only the initial weights depend on it.
    """

    shape: tuple[int, ...]
    length: tuple[float, ...]
    dt: float
    stepper: str = "euler"
    operators: str = "both"
    conserved: bool = False
    gauge: str = "none"
    hidden: int = 64
    nonlocal_modes: int = 16
    local_derivative: str = "exact"
    init_a: float = 1.0
    init_b: float = 1.0
    init_m: float = 1.0
    init_m_cap: float | None = 0.1
    name: str = "speconsnet"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "length", tuple(float(L) for L in self.length))
        if self.name != "speconsnet":
            raise ValueError(f"name must be 'speconsnet' for SpecOnsNetConfig, got {self.name!r}.")
        if len(self.shape) not in (1, 2) or any(n < 2 for n in self.shape):
            raise ValueError(f"shape must be (n,) or (ny, nx) with every n >= 2, got {self.shape}.")
        if len(self.length) != len(self.shape) or any(not (L > 0 and math.isfinite(L)) for L in self.length):
            raise ValueError(f"length must hold one positive length per axis of shape {self.shape}, "
                             f"got {self.length}.")
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"dt must be positive and finite, got {self.dt}.")
        if self.stepper not in STEPPERS:
            raise ValueError(f"stepper must be one of {', '.join(STEPPERS)}, got {self.stepper!r}.")
        if self.operators not in OPERATOR_CHOICES:
            raise ValueError(f"operators must be one of {', '.join(OPERATOR_CHOICES)}, got {self.operators!r}.")
        if self.gauge not in GAUGES:
            raise ValueError(f"gauge must be one of {', '.join(GAUGES)}, got {self.gauge!r}.")
        if self.hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {self.hidden}.")
        if self.local_derivative not in LOCAL_DERIVATIVES:
            raise ValueError(f"local_derivative must be one of {', '.join(LOCAL_DERIVATIVES)}, "
                             f"got {self.local_derivative!r}.")
        if self.nonlocal_modes < 0:
            raise ValueError(f"nonlocal_modes must be >= 0, got {self.nonlocal_modes}.")
        for key in ("init_a", "init_b"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}.")
        if not self.init_m >= 0:
            raise ValueError(f"init_m must be non-negative, got {self.init_m}.")
        if self.init_m_cap is not None and not self.init_m_cap > 0:
            raise ValueError(f"init_m_cap must be positive or None, got {self.init_m_cap}.")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["shape"] = list(self.shape)
        out["length"] = list(self.length)
        return out


def model_config(**options: Any) -> dict[str, Any]:
    """A validated, complete, JSON-able model config with defaults filled in.

    Keyword arguments are the fields of :class:`SpecOnsNetConfig` (``name`` defaults to ``"speconsnet"``).
    Unknown keys raise ``ValueError``.
    """
    return _make_config(options).to_dict()


def _make_config(options: Mapping[str, Any]) -> SpecOnsNetConfig:
    name = options.get("name", "speconsnet")
    if name != "speconsnet":
        raise ValueError(f"model name must be 'speconsnet', got {name!r}.")
    known = {f.name for f in dataclasses.fields(SpecOnsNetConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown model option '{unknown[0]}'; allowed: {', '.join(sorted(known))}.")
    return SpecOnsNetConfig(**options)


class SpecOnsNet(nn.Module):
    """Spectral Onsager network ``du/dt = -(M + W) mu``, ``mu = dV/du`` (see :mod:`mesodyn.onsager`).

    Construct with the keyword arguments of :class:`SpecOnsNetConfig`. Fields are tensors of shape
    ``(batch, *shape)``.
    """

    def __init__(self, **options: Any):
        super().__init__()
        cfg = _make_config(options)
        self._cfg = cfg
        self.grid = SpectralGrid(shape=cfg.shape, length=cfg.length)
        self.operators = FourierOperators(grid=self.grid, operators=cfg.operators, conserved=cfg.conserved,
                                          init_m=cfg.init_m)
        if cfg.init_m_cap is not None and self.operators.has_m:
            k2 = self.operators.pair_k2()
            m0 = np.minimum(cfg.init_m, cfg.init_m_cap / (cfg.dt * (cfg.init_a + cfg.init_b * k2)))
            with torch.no_grad():
                self.operators.theta.copy_(torch.as_tensor(np.sqrt(m0), dtype=self.operators.theta.dtype))
        self.free_energy = FreeEnergy(grid=self.grid, hidden=cfg.hidden, nonlocal_modes=cfg.nonlocal_modes,
                                      fix_b=cfg.gauge == "unit_b", local_derivative=cfg.local_derivative,
                                      init_a=cfg.init_a, init_b=cfg.init_b)

    @property
    def config(self) -> dict[str, Any]:
        return self._cfg.to_dict()

    @property
    def dt(self) -> float:
        return self._cfg.dt

    @property
    def stepper(self) -> str:
        return self._cfg.stepper

    def _check(self, u: torch.Tensor) -> None:
        if tuple(u.shape[1:]) != self.grid.shape:
            raise ValueError(f"u must have shape (batch, {', '.join(map(str, self.grid.shape))}), "
                             f"got {tuple(u.shape)}.")

    def mu(self, u: torch.Tensor) -> torch.Tensor:
        """``dV/du`` in the grid inner product ``<f, g> = (|Omega|/N) sum f g`` (mean over cells times the
        domain volume), the same inner product in which ``M`` is symmetric PSD and ``W`` antisymmetric."""
        self._check(u)
        return self.free_energy.mu(u)

    def energy(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"quadratic", "local", "nonlocal", "total"}``, each of shape ``(batch,)``."""
        self._check(u)
        return self.free_energy.energy(u)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The vector field ``du/dt = -(M + W) mu(u)``."""
        return -self.operators.apply(self.mu(u))

    def step(self, u: torch.Tensor, dt: float | None = None, stepper: str | None = None) -> torch.Tensor:
        """One step of size ``dt`` (default ``self.dt``) with ``stepper`` (default: the configured one)."""
        self._check(u)
        return _step(self, u, self.dt if dt is None else float(dt), stepper or self.stepper)

    def rollout(self, u0: torch.Tensor, n_steps: int, dt: float | None = None,
                stepper: str | None = None) -> torch.Tensor:
        """Autoregressive rollout, ``(batch, n_steps + 1, *shape)`` including ``u0``."""
        states = [u0]
        u = u0
        for _ in range(int(n_steps)):
            u = self.step(u, dt=dt, stepper=stepper)
            states.append(u)
        return torch.stack(states, dim=1)

    def dissipation_rate(self, u: torch.Tensor) -> torch.Tensor:
        """``dV/dt = <mu, du/dt> = -<mu, M mu>`` per batch member (continuous time)."""
        return -self.operators.dissipation(self.mu(u))

    def energy_lower_bound(self) -> torch.Tensor:
        """``C`` with ``V(u) >= -C`` for every field (``C = |Omega| ||w_out||_1``)."""
        return self.free_energy.lower_bound()

    def stabilization(self) -> torch.Tensor:
        """``S = L/2`` used by the ``"stabilized"`` stepper."""
        return 0.5 * self.free_energy.curvature_bound()


_REGISTRY = {"speconsnet": SpecOnsNet}


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model (architecture only, fresh weights) from its config; dispatches on ``config["name"]``."""
    options = dict(config)
    name = options.get("name")
    if name not in _REGISTRY:
        raise ValueError(f"config['name'] must be one of {', '.join(sorted(_REGISTRY))}, got {name!r}.")
    return _REGISTRY[name](**options)


def check_model_config(config: Mapping[str, Any]) -> None:
    """Validate a model config before any data exist: the data-dependent keys (``shape``, ``length``, ``dt``)
    are replaced by placeholders. Raises ``ValueError`` naming the mistake."""
    options = dict(config)
    name = options.get("name")
    if name not in _REGISTRY:
        raise ValueError(f"model name must be one of {', '.join(sorted(_REGISTRY))}, got {name!r}.")
    placeholders = {"shape": [8], "length": [1.0], "dt": 1.0}
    _make_config({**options, **placeholders})


def grid_from_coordinates(*coords: Sequence[float]) -> dict[str, list]:
    """``{"shape": [...], "length": [...]}`` from uniform periodic coordinate arrays (2-D: ``y`` then ``x``).

    The period is ``n * spacing`` (the last point is not repeated), so it is read from the data, never assumed.
    """
    shape, length = [], []
    for c in coords:
        c = np.asarray(c, dtype=float)
        if c.ndim != 1 or c.size < 2:
            raise ValueError(f"each coordinate must be a 1-D array of at least 2 points, got shape {c.shape}.")
        spacing = np.diff(c)
        if not np.allclose(spacing, spacing[0], rtol=1e-9, atol=0.0) or spacing[0] <= 0:
            raise ValueError("coordinates must be uniformly spaced and increasing.")
        shape.append(int(c.size))
        length.append(float(c.size * (c[-1] - c[0]) / (c.size - 1)))
    return {"shape": shape, "length": length}
