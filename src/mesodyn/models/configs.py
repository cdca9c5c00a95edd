"""The JSON-able configs of every registered model; no PyTorch here, so a workflow config is checked fast.

Every config is a frozen dataclass that validates itself. The grid keys ``shape``, ``length`` and ``dt`` always
come from the data (:meth:`ModelConfig.for_data`); so do a few model keys that depend on the data set, such as the
PDE of the ``classical`` model. ``name`` is the registry name of the model (:mod:`mesodyn.registry`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "ModelConfig", "SpecOnsNetConfig", "TrueVConfig", "ClassicalConfig", "FNOConfig", "OnsagerNetConfig",
    "ResOnsagerNetConfig", "STEPPERS", "W_SYMBOLS", "ENERGY_STEPPERS", "LOCAL_DERIVATIVES", "GAUGES", "OPERATOR_CHOICES", "INITS",
    "NONLOCAL_GRADIENTS", "GRID_KEYS",
]

# Time steppers of the Onsager models (mesodyn.onsager.steppers): the paper's explicit Euler and SBDF1, our
# provably energy-dissipating stabilized SBDF1, our second-order average-vector-field (discrete-gradient) step, and
# our exponential integrators (exponential Euler and ETD2RK: the linear part exact).
STEPPERS = ("euler", "sbdf1", "stabilized", "avf", "exponential", "etdrk2")
# How W's symbol is learned (mesodyn.onsager.operators): free on every pair of modes, or W = c . grad.
W_SYMBOLS = ("free", "first_order")
# The steppers whose energy law needs mu = dV/du (refused with the paper's V_nl gradient, and without a V).
ENERGY_STEPPERS = ("stabilized", "avf")
# How F' is evaluated at the grid points (mesodyn.onsager.energy): exactly, or through the verified interpolant.
LOCAL_DERIVATIVES = ("exact", "interpolant")
GAUGES = ("none", "unit_b")
OPERATOR_CHOICES = ("both", "M", "W")
# Initial weights: ours, or the authors' (theta ~ N(0, 0.1^2) for M, phi ~ N(0, 0.01^2) for W, a = b = softplus(0)).
INITS = ("ours", "paper")
# Gradient of V_nl: consistent with the grid inner product (ours) or taken on raw FFT coefficients (the paper's).
NONLOCAL_GRADIENTS = ("consistent", "paper")
GRID_KEYS = ("shape", "length", "dt")

# Placeholder grids for checking a config before any data exist.
_PLACEHOLDER = {1: {"shape": [8], "length": [1.0], "dt": 1.0}, 2: {"shape": [8, 8], "length": [1.0, 1.0], "dt": 1.0}}


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} finite number, got {value!r}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """What every model config holds: the periodic grid (``shape``, ``length`` per axis) and the step ``dt``.

    Subclasses add their own keys and set ``name`` (the registry name).
    """

    name: ClassVar[str] = ""
    shape: tuple[int, ...]
    length: tuple[float, ...]
    dt: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in np.atleast_1d(self.shape)))
        object.__setattr__(self, "length", tuple(float(L) for L in np.atleast_1d(self.length)))
        if len(self.shape) not in (1, 2) or any(n < 2 for n in self.shape):
            raise ValueError(f"shape must be (n,) or (ny, nx) with every n >= 2, got {self.shape}.")
        if len(self.length) != len(self.shape) or any(not (L > 0 and math.isfinite(L)) for L in self.length):
            raise ValueError(f"length must hold one positive length per axis of shape {self.shape}, "
                             f"got {self.length}.")
        if not (isinstance(self.dt, (int, float)) and self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"dt must be positive and finite, got {self.dt!r}.")
        self.validate()

    def validate(self) -> None:
        """Checks of the model's own keys (raise ``ValueError`` naming the key)."""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    # -- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ModelConfig:
        """Build from a mapping such as ``model.json``; unknown keys and a foreign ``name`` are errors."""
        options = dict(options)
        name = options.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"model name must be {cls.name!r} for {cls.__name__}, got {name!r}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown option '{unknown[0]}' of model {cls.name!r}; allowed: "
                             f"{', '.join(sorted(known - set(GRID_KEYS)))}.")
        missing = [k for k in GRID_KEYS if k not in options]
        if missing:
            raise ValueError(f"model config lacks '{missing[0]}' (the grid comes from the data: use "
                             "mesodyn.models.config_for_data).")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, **dataclasses.asdict(self)}
        out["shape"] = list(self.shape)
        out["length"] = list(self.length)
        return out

    @classmethod
    def data_options(cls, options: Mapping[str, Any], *, dataset: str | None,
                     attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Model keys that follow from the data set (beyond the grid); ``options`` holds the user's keys.

        The default has none. ``dataset`` is the data set's registry name (``None`` if unknown), ``attrs`` its
        global attributes.
        """
        return {}

    @classmethod
    def check(cls, options: Mapping[str, Any], *, dataset: str | None = None, ndim: int = 1) -> None:
        """Validate ``options`` before the data exist: placeholders stand in for the grid (and the data set's
        usual attributes for data-dependent keys)."""
        from mesodyn.registry import DATASETS, USER_DATASETS

        if dataset in DATASETS or dataset in USER_DATASETS:
            ndim = (DATASETS.get(dataset) or USER_DATASETS[dataset]).ndim
        grid = _PLACEHOLDER[ndim]
        options = {k: v for k, v in options.items() if k not in GRID_KEYS}
        try:
            extra = cls.data_options(options, dataset=dataset, attrs=_TYPICAL_ATTRS.get(_equation(dataset), {}))
        except ValueError:
            if dataset is not None:
                raise
            extra = {}  # which data set is not known yet: checked again per data set
        cls.from_options({**extra, **options, **grid})


def _equation(dataset: str | None) -> str | None:
    """The paper data set whose equation a user data set declares (``pde``), so that its data-dependent keys follow
    the same rule; any other name unchanged."""
    from mesodyn.registry import USER_DATASETS

    info = USER_DATASETS.get(dataset or "")
    return info.pde if info is not None and info.pde else dataset


# Attributes a data set's file carries, standing in for the file when a config is checked before the data exist.
_TYPICAL_ATTRS = {
    "allen_cahn": {"dataset": "allen_cahn", "epsilon": 0.1},
    "allen_cahn_2d": {"dataset": "allen_cahn_2d", "epsilon": 0.1},
    "kdv": {"dataset": "kdv"},
    "cahn_hilliard": {"kappa": 0.1},
    "fput": {"model": "fput", "c": 1.0, "alpha": 1.0, "beta": 0.0, "epsilon": 2 * math.pi / 128},
    "fene": {"model": "fene", "c": 1.0, "H": 1.0, "R_over_eps2": 50.0, "epsilon": 2 * math.pi / 209},
}


# ----------------------------------------------------------------------------------------------------------
# SpecOnsNet and its ablation
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class _OnsagerOperatorsConfig(ModelConfig):
    """Keys shared by the models with SpecOnsNet's learned Fourier multipliers M and W."""

    stepper: str = "euler"
    operators: str = "both"
    conserved: bool = False
    init: str = "ours"
    init_m: float = 1.0
    init_m_cap: float | None = 0.1
    substeps: int = 1
    mobility_above: float | None = None
    w_symbol: str = "free"

    def validate(self) -> None:
        _choice("stepper", self.stepper, STEPPERS)
        _positive_int("substeps", self.substeps)
        _choice("operators", self.operators, OPERATOR_CHOICES)
        if self.mobility_above is not None:
            _positive("mobility_above", self.mobility_above, allow_zero=True)
            if self.operators == "W":
                raise ValueError("mobility_above restricts M to the modes above it; it needs operators 'both' or "
                                 "'M', got operators 'W'.")
        _choice("w_symbol", self.w_symbol, W_SYMBOLS)
        if self.w_symbol != "free" and self.operators == "M":
            raise ValueError(f"w_symbol {self.w_symbol!r} shapes W; it needs operators 'both' or 'W', "
                             "got operators 'M'.")
        _choice("init", self.init, INITS)
        if not isinstance(self.conserved, bool):
            raise ValueError(f"conserved must be true or false, got {self.conserved!r}.")
        _positive("init_m", self.init_m, allow_zero=True)
        if self.init_m_cap is not None:
            _positive("init_m_cap", self.init_m_cap)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpecOnsNetConfig(_OnsagerOperatorsConfig):
    """Architecture of a :class:`mesodyn.onsager.SpecOnsNet`.

    Parameters
    ----------
    shape, length, dt
        Grid points and domain length per axis, and the default time step: from the data.
    stepper
        ``"euler"`` (paper), ``"sbdf1"`` (paper), ``"stabilized"`` (ours: provably energy-dissipating, first
        order), ``"avf"`` (ours: average vector field, second order, ``V(u+) - V(u) = -dt <mu_bar, M mu_bar>``
        to quadrature and solver accuracy; implicit, solved by a fixed-point iteration), ``"exponential"`` (ours:
        exponential Euler, the linear part exact) or ``"etdrk2"`` (ours: ETD2RK, the same to second order);
        :mod:`mesodyn.onsager.steppers`.
    substeps
        Substeps of ``dt / substeps`` per step (default 1, the paper's): a trained map then resolves modes that are
        stiff on the frame spacing (docs/identifiability.md), at ``substeps`` times the cost.
    train_stepper, train_substeps
        The step of the training loss only (the model in training mode, ``model.train()``); ``None`` (default):
        ``stepper`` and ``substeps``. Every rollout, the validation loss included, takes ``stepper`` and
        ``substeps``. Ours: train a second-order model of the continuous dynamics with a cheap step (``etdrk2``)
        and roll it out with a structure-preserving one (``avf``) whose guarantee then holds for every rollout
        (docs/onsager.md); an implicit step in the training loss costs 10-60 times an explicit one.
    operators
        ``"both"`` (M and W), ``"M"`` (dissipative only) or ``"W"`` (conservative only).
    conserved
        ``m(0) = 0``: the dissipation conserves the mean of the field.
    mobility_above
        ``m(k) = 0`` on every mode with ``|k| <= mobility_above`` (in the data's wavenumber units, ``2 pi n / L``):
        ``M`` then acts only on the modes above, as a closure for modes the data do not resolve, and the resolved
        ones follow ``W`` alone (a hypothesis class of its own; docs/identifiability.md). ``None`` (default): ``M``
        on every mode.
    w_symbol
        ``"free"`` (default, the paper's): ``phi(k)`` learned on every pair of modes. ``"first_order"``:
        ``W = c . grad``, ``phi(k) = c . k`` with one learned coefficient per axis (a hypothesis class: a local
        first-order antisymmetric operator, as KdV's ``-d/dx``).
    gauge
        ``"none"`` or ``"unit_b"``: fix ``b = 1``, which removes the scale freedom
        ``(M, W, V) -> (M/c, W/c, c V)`` of the factorization.
    hidden
        Width of the pointwise MLP ``F``.
    nonlocal_modes
        Lowest Fourier modes per axis fed to ``V_nl`` (0: no ``V_nl``).
    nonlocal_gradient
        ``"consistent"`` (ours, default): ``dV_nl/du`` in the grid inner product used for every other part of
        ``V``. ``"paper"``: the authors' gradient with respect to the raw FFT coefficients, which is not the
        gradient of ``V_nl`` in that inner product (it makes ``V_nl`` ~1e-4 times weaker in the dynamics);
        offered for a like-for-like comparison with the paper's SpecOnsNet. The model is then not a gradient
        flow of its ``V``, so ``stepper: stabilized`` and ``stepper: avf`` are refused with it.
    local_derivative
        ``"exact"``: ``F'`` in closed form at every grid point; ``"interpolant"``: through a piecewise polynomial
        whose error is measured at every call and kept below 1e-6 (float32) or 1e-12 (float64) of ``max |F'|``
        (:mod:`mesodyn.onsager.interpolant`). The same model, 10-20x faster training on a CPU.
    init
        ``"ours"`` (default): ``a = init_a``, ``b = init_b``, ``m(k) = init_m`` capped by ``init_m_cap``, ``W = 0``.
        ``"paper"``: the authors' initial weights (``theta ~ N(0, 0.1^2)`` for M, ``phi ~ N(0, 0.01^2)`` for W,
        ``a = b = softplus(0)``); ``init_a``, ``init_b``, ``init_m`` and ``init_m_cap`` are then not used.
    init_a, init_b, init_m
        Initial ``a``, ``b`` and symbol value ``m(k)`` (``init: ours``).
    init_m_cap
        Explicit-Euler-stable start (``init: ours``): the initial ``m(k)`` is
        ``min(init_m, init_m_cap / (dt (a + b |k|^2)))``, so one explicit Euler step of the initial model changes
        no mode by more than the fraction ``init_m_cap`` through the quadratic part of ``V``. Without it
        (``None``) training on data with a large saved ``dt`` (the chains) starts from a diverging rollout.
    """

    name: ClassVar[str] = "speconsnet"
    gauge: str = "none"
    hidden: int = 64
    nonlocal_modes: int = 16
    nonlocal_gradient: str = "consistent"
    local_derivative: str = "exact"
    init_a: float = 1.0
    init_b: float = 1.0
    train_stepper: str | None = None
    train_substeps: int | None = None

    def validate(self) -> None:
        super().validate()
        if self.train_stepper is not None:
            _choice("train_stepper", self.train_stepper, STEPPERS)
        if self.train_substeps is not None:
            _positive_int("train_substeps", self.train_substeps)
        _choice("gauge", self.gauge, GAUGES)
        _choice("local_derivative", self.local_derivative, LOCAL_DERIVATIVES)
        _choice("nonlocal_gradient", self.nonlocal_gradient, NONLOCAL_GRADIENTS)
        _positive_int("hidden", self.hidden)
        if isinstance(self.nonlocal_modes, bool) or not isinstance(self.nonlocal_modes, (int, np.integer)) \
                or self.nonlocal_modes < 0:
            raise ValueError(f"nonlocal_modes must be an integer >= 0, got {self.nonlocal_modes!r}.")
        for key, value in (("stepper", self.stepper), ("train_stepper", self.train_stepper)):
            if value in ENERGY_STEPPERS and self.nonlocal_gradient == "paper" and self.nonlocal_modes > 0:
                raise ValueError(f"{key} {value!r} guarantees its energy law only for a gradient flow, which "
                                 "nonlocal_gradient 'paper' is not; use 'euler' or 'sbdf1' with it.")
        _positive("init_a", self.init_a)
        _positive("init_b", self.init_b)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrueVConfig(_OnsagerOperatorsConfig):
    """The true-V ablation: SpecOnsNet's learned M and W with V fixed to the system's true energy.

    ``energy`` is ``"allen_cahn"`` (``V = int 1/2 |grad u|^2 + (u^2 - 1)^2 / (4 eps^2)``) or ``"kdv"``
    (``V = int 1/2 u_x^2 - u^3``, 1-D only); with ``epsilon`` it is read from the data set when not given.
    ``stepper`` is ``"euler"`` (the paper's) or ``"sbdf1"``: the stabilized stepper needs a bound on the curvature
    of the explicit part of ``V``, which the true energies lack.
    """

    name: ClassVar[str] = "speconsnet_true_v"
    energy: str = "allen_cahn"
    epsilon: float = 0.1

    def validate(self) -> None:
        super().validate()
        _choice("energy", self.energy, ("allen_cahn", "kdv"))
        _positive("epsilon", self.epsilon)
        if self.stepper not in ("euler", "sbdf1"):
            raise ValueError(f"stepper must be euler or sbdf1 for {self.name} (the stabilized stepper needs a "
                             f"curvature bound that the true energy lacks), got {self.stepper!r}.")
        if self.energy == "kdv" and len(self.shape) != 1:
            raise ValueError(f"energy 'kdv' is defined on 1-D fields only, got shape {self.shape}.")

    @classmethod
    def data_options(cls, options, *, dataset, attrs):
        out: dict[str, Any] = {}
        dataset = _equation(dataset)
        if dataset in ("allen_cahn", "allen_cahn_2d"):
            out = {"energy": "allen_cahn", "epsilon": float(attrs.get("epsilon", 0.1))}
        elif dataset == "kdv":
            out = {"energy": "kdv"}
        elif "energy" not in options:
            raise ValueError(f"no true energy is known for data set {dataset!r}; give 'energy' "
                             "(allen_cahn or kdv) explicitly.")
        return out


# ----------------------------------------------------------------------------------------------------------
# classical solver
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassicalConfig(ModelConfig):
    """The true PDE in Onsager form, stepped with SBDF1 at ``dt`` without dealiasing (the paper's classical row).

    ``pde = "allen_cahn"``: ``u_t = Lap u + (u - u^3)/eps^2``. ``pde = "cahn_hilliard"``:
    ``u_t = Lap (u^3 - u - kappa Lap u)`` (``kappa`` from the data set's attributes). ``pde = "gkdv"``:
    ``u_t + nonlinear u^power u_x + dispersion u_xxx = 0`` (KdV: 6, 1, 1; the FPUT chain's limit:
    ``alpha/c``, 1, ``c/24``; the FENE chain's: ``3 H / (2 c R_over_eps2^2 eps^2)``, 2, ``c/24``). Read from the
    data set when not given.
    """

    name: ClassVar[str] = "classical"
    pde: str = "allen_cahn"
    epsilon: float = 0.1
    kappa: float = 0.1
    nonlinear: float = 6.0
    power: int = 1
    dispersion: float = 1.0

    def validate(self) -> None:
        _choice("pde", self.pde, ("allen_cahn", "gkdv", "cahn_hilliard"))
        if self.pde == "gkdv" and len(self.shape) != 1:
            raise ValueError(f"pde 'gkdv' is defined on 1-D fields only, got shape {self.shape}.")
        _positive("epsilon", self.epsilon)
        _positive("kappa", self.kappa)
        _positive_int("power", self.power)
        _positive("dispersion", self.dispersion)
        if not math.isfinite(float(self.nonlinear)):
            raise ValueError(f"nonlinear must be finite, got {self.nonlinear!r}.")

    @classmethod
    def data_options(cls, options, *, dataset, attrs):
        dataset = _equation(dataset)
        if dataset in ("allen_cahn", "allen_cahn_2d"):
            return {"pde": "allen_cahn", "epsilon": float(attrs.get("epsilon", 0.1))}
        if dataset == "kdv":
            return {"pde": "gkdv", "nonlinear": 6.0, "power": 1, "dispersion": 1.0}
        if dataset == "cahn_hilliard":
            if "kappa" not in attrs:
                raise ValueError("the classical Cahn-Hilliard step needs kappa: declare data.<name>.kappa.")
            return {"pde": "cahn_hilliard", "kappa": float(attrs["kappa"])}
        if dataset == "fput":
            c = float(attrs.get("c", 1.0))
            if float(attrs.get("beta", 0.0)) != 0.0:
                raise ValueError("the classical model knows the FPUT chain's KdV limit only for beta = 0.")
            return {"pde": "gkdv", "nonlinear": float(attrs.get("alpha", 1.0)) / c, "power": 1,
                    "dispersion": c / 24}
        if dataset == "fene":
            c, eps = float(attrs.get("c", 1.0)), float(attrs["epsilon"])
            h, r = float(attrs.get("H", c * c)), float(attrs.get("R_over_eps2", 50.0))
            return {"pde": "gkdv", "nonlinear": 3 * h / (2 * c * r**2 * eps**2), "power": 2, "dispersion": c / 24}
        if "pde" not in options:
            raise ValueError(f"no PDE is known for data set {dataset!r}; give 'pde' and its coefficients.")
        return {}


# ----------------------------------------------------------------------------------------------------------
# neural baselines
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class FNOConfig(ModelConfig):
    """The neuraloperator library's ``FNO`` as a one-step model ``u+ = u + dt FNO(u)``.

    ``n_modes`` Fourier modes kept per axis (paper 24), ``hidden_channels`` (paper 32), ``n_layers`` (library
    default 4); every other argument is the library's default.
    """

    name: ClassVar[str] = "fno"
    n_modes: int = 24
    hidden_channels: int = 32
    n_layers: int = 4

    def validate(self) -> None:
        for key in ("n_modes", "hidden_channels", "n_layers"):
            _positive_int(key, getattr(self, key))


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnsagerNetConfig(ModelConfig):
    """OnsagerNet on the grid values as one state vector (1-D only), stepped with explicit Euler.

    ``V = alpha/2 |x|^2 + MLP_V(x)``, ``M = beta I + B B^T`` (rank ``rank_m``), ``W = B C^T - C B^T``
    (rank ``rank_w``); tanh MLPs of width ``hidden``: ``MLP_V`` has ``n_hidden_layers`` hidden layers, the two
    factor MLPs of M and W ``operator_hidden_layers`` (the authors' 3 and 2: 1.25 M parameters on 256 points).
    ``beta`` is read from the data set when not given: 1e-3 for Allen–Cahn, 0 otherwise (the paper's).
    """

    name: ClassVar[str] = "onsagernet"
    hidden: int = 256
    n_hidden_layers: int = 3
    operator_hidden_layers: int = 2
    rank_m: int = 8
    rank_w: int = 4
    alpha0: float = 0.01
    beta: float = 0.0

    def validate(self) -> None:
        if len(self.shape) != 1:
            raise ValueError(f"onsagernet works on 1-D fields only, got shape {self.shape}.")
        for key in ("hidden", "n_hidden_layers", "operator_hidden_layers", "rank_m", "rank_w"):
            _positive_int(key, getattr(self, key))
        _positive("alpha0", self.alpha0)
        _positive("beta", self.beta, allow_zero=True)

    @classmethod
    def data_options(cls, options, *, dataset, attrs):
        return {"beta": 1e-3 if dataset in ("allen_cahn", "allen_cahn_2d") else 0.0}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResOnsagerNetConfig(_OnsagerOperatorsConfig):
    """Res-OnsagerNet: SpecOnsNet's M, W and step, ``mu_hat = (a + b k^2) u_hat + MLP([Re u_hat, Im u_hat])``.

    ``quadratic = "paper"`` (default) reproduces the authors' code: ``a = a_p^2``, ``b = b_p^2`` with
    ``a_p = b_p = 0`` at the start, so their gradient vanishes and ``a = b = 0`` for ever. ``"learned"`` repairs
    it (``a, b = softplus(.)`` starting at ``init_a``, ``init_b``). The MLP has ``n_hidden_layers`` ReLU layers of
    width ``hidden`` with residual skips, a sine on the last hidden layer and no output bias. The authors'
    initial M and W (``init: paper``) are the default here.
    """

    name: ClassVar[str] = "res_onsagernet"
    init: str = "paper"
    hidden: int = 512
    n_hidden_layers: int = 3
    quadratic: str = "paper"
    init_a: float = 1.0
    init_b: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.stepper in ENERGY_STEPPERS:  # their energy law needs a V, and this mu has none
            raise ValueError("stepper must be euler or sbdf1 for res_onsagernet (it has no energy to stabilize or "
                             f"conserve), got {self.stepper!r}.")
        _choice("quadratic", self.quadratic, ("paper", "learned"))
        _positive_int("hidden", self.hidden)
        _positive_int("n_hidden_layers", self.n_hidden_layers)
        _positive("init_a", self.init_a)
        _positive("init_b", self.init_b)
