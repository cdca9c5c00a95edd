"""The one list of data sets and models, with nothing heavy imported.

``DATASETS`` maps a data-set name to what the rest of the package needs to know about it (its kind, dimension,
display name, known PDE and energy, and the published numbers it has, if any); ``MODELS`` maps a model name (the
``name`` key of a model config) to where its class and its config class live, as ``"module:Class"`` strings that are
imported only when needed, and to what the model can do (:class:`Capabilities`). Validating a workflow config
therefore imports no PyTorch model code: the config classes live in the torch-free :mod:`mesodyn.models.configs`.

Nobody else spells out a data-set or model name to decide what to do with it: ask :func:`is_chain`, :func:`ndim`,
:func:`true_energy_system` or a model's :class:`Capabilities` instead. Adding a data set or a model is one entry here
plus its own module (``docs/extending.md``). The order of each dict is the order of the table's rows.

A data set of the user's own (``docs/your-data.md``) is named in a workflow config with its file
(``data: {name: {path: ...}}``) and joined to the registry by :func:`register_user_datasets`, as a
:class:`DatasetInfo` of kind ``"user"`` whose dimension and size are read from the file's header; from then on
every question above has its answer for it too.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DatasetInfo", "Capabilities", "ModelInfo", "DATASETS", "MODELS", "import_object", "model_info",
           "dataset_info", "is_chain", "ndim", "true_energy_system", "diagnosable_models", "USER_DATASETS",
           "user_dataset_info", "register_user_datasets", "user_datasets"]


@dataclass(frozen=True)
class DatasetInfo:
    """A data set of the workflow.

    Attributes
    ----------
    kind : {"chain", "pde", "user"}
        Simulated as a microscopic chain and coarse-grained, solved as a continuum PDE, or a file of the user's own
        (made outside mesodyn; :func:`register_user_datasets`).
    ndim : {1, 2}
        Dimension of the field's grid.
    pde : str or None
        The PDE whose classical step is known for it (the equation itself, or for the chains its leading-order
        long-wave limit); ``None`` for a user data set that declares none.
    label : str
        The name figures and the report show.
    energy : str or None
        The system whose true energy (and operator symbols) is known, a key of
        :data:`mesodyn.diagnostics.SYSTEMS`; ``None`` where none is (the chains' mesoscopic energy is unknown).
    published : str or None
        The authors' name of the data set in their result file (the package data ``paper_table.csv``), whose rows
        the table prints beside ours; ``None`` where there are no published numbers.
    path : str or None
        A user data set's file (``None`` for the data sets the workflow makes).
    shape : tuple of int or None
        A user data set's ``u`` shape (sample, time, grid...), read from the file's header (memory requests).
    """

    kind: str
    ndim: int
    pde: str | None
    label: str
    energy: str | None = None
    published: str | None = None
    path: str | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a model offers beyond ``step``, declared once so that the diagnostics never probe a model for methods.

    Attributes
    ----------
    energy : bool
        ``energy(u)``: a learned (or fixed) free energy ``V`` per batch member.
    operators : bool
        Fourier operators ``M`` and ``W`` (attributes ``operators`` and ``grid``) whose symbols can be read.
    dissipation : bool
        ``dissipation_rate(u)``: ``-<mu, M mu>``.
    steppers : tuple of str
        The values ``step(u, dt, stepper=...)`` may take, and the attribute ``stepper``, the one its config chose;
        empty: the model has one step and no ``stepper`` option.
    energy_parts : bool
        An energy of the form ``int a/2 u^2 + b/2 |grad u|^2 + int F(u) (+ V_nl)``, whose ``energy(u)`` reports
        the ``"quadratic"`` and ``"local"`` parts, with ``quadratic_coefficients()`` (``a`` and ``b``) and
        ``local_density(u)`` (``F`` elementwise).
    local_derivatives : tuple of str
        The values the settable attribute ``local_derivative`` (how ``F'`` is evaluated: the same function by
        different means) may take; empty: the model has no such option.
    """

    energy: bool = False
    operators: bool = False
    dissipation: bool = False
    steppers: tuple[str, ...] = ()
    energy_parts: bool = False
    local_derivatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its class and config class (``"module:Class"``), the field dimensions it supports,
    the data sets it applies to (``None``: any data set of a supported dimension), whether it has trainable
    parameters, a one-line description, its name in figures (``label``, as the paper names it) and its colour,
    its ``role`` in the comparison (``"paper"``: the paper's model, ``"classical"``, ``"baseline"``: a learned
    baseline, ``"ablation"``), what it can do (:class:`Capabilities`) and what a user data set must declare for it
    to apply (``requires``: ``"pde"``, a known equation, or ``"energy"``, a known true energy; ``None``: nothing)."""

    model: str
    config: str
    dims: tuple[int, ...]
    datasets: tuple[str, ...] | None
    trainable: bool
    description: str
    label: str
    color: str
    role: str
    capabilities: Capabilities = Capabilities()
    requires: str | None = None

    def applies_to(self, dataset: str) -> bool:
        info = DATASETS.get(dataset, USER_DATASETS.get(dataset))
        if info is None:
            return self.datasets is None
        if info.ndim not in self.dims:
            return False
        if info.kind == "user":  # a file of the user's own: the model applies where its requirement is declared
            return self.requires is None or getattr(info, self.requires) is not None
        return self.datasets is None or dataset in self.datasets


DATASETS: dict[str, DatasetInfo] = {
    "allen_cahn": DatasetInfo(kind="pde", ndim=1, pde="allen_cahn", label="Allen–Cahn 1-D", energy="allen_cahn",
                              published="ac"),
    "kdv": DatasetInfo(kind="pde", ndim=1, pde="kdv", label="KdV", energy="kdv", published="kdv"),
    "fput": DatasetInfo(kind="chain", ndim=1, pde="kdv_limit", label="FPUT chain", published="ckdv"),
    "fene": DatasetInfo(kind="chain", ndim=1, pde="mkdv_limit", label="FENE chain", published="fene_v2"),
    "allen_cahn_2d": DatasetInfo(kind="pde", ndim=2, pde="allen_cahn", label="Allen–Cahn 2-D", energy="allen_cahn",
                                 published="ac_2d"),
}

_CONFIGS = "mesodyn.models.configs"
_ONSAGER_STEPPERS = ("euler", "sbdf1", "stabilized", "avf", "exponential", "etdrk2")  # mesodyn.models.configs.STEPPERS
_LOCAL_DERIVATIVES = ("exact", "interpolant")  # mesodyn.models.configs.LOCAL_DERIVATIVES

MODELS: dict[str, ModelInfo] = {
    "speconsnet": ModelInfo(
        model="mesodyn.onsager.model:SpecOnsNet", config=f"{_CONFIGS}:SpecOnsNetConfig", dims=(1, 2),
        datasets=None, trainable=True, description="spectral Onsager network (the paper's model)",
        label="SpecOnsNet", color="#0072B2", role="paper",
        capabilities=Capabilities(energy=True, operators=True, dissipation=True, steppers=_ONSAGER_STEPPERS,
                                  energy_parts=True, local_derivatives=_LOCAL_DERIVATIVES),
    ),
    "classical": ModelInfo(
        model="mesodyn.baselines.classical:Classical", config=f"{_CONFIGS}:ClassicalConfig", dims=(1, 2),
        datasets=("allen_cahn", "allen_cahn_2d", "kdv", "fput", "fene"), trainable=False,
        description="the true PDE (chains: its KdV/mKdV limit) stepped with SBDF1; nothing trained",
        label="classical solver", color="#000000", role="classical", requires="pde",
    ),
    "fno": ModelInfo(
        model="mesodyn.baselines.fno:FNOStep", config=f"{_CONFIGS}:FNOConfig", dims=(1, 2), datasets=None,
        trainable=True, description="Fourier neural operator (neuraloperator library), u+ = u + dt FNO(u)",
        label="FNO", color="#D55E00", role="baseline",
    ),
    "onsagernet": ModelInfo(
        model="mesodyn.baselines.onsagernet:OnsagerNet", config=f"{_CONFIGS}:OnsagerNetConfig", dims=(1,),
        datasets=None, trainable=True, description="OnsagerNet on the grid values as one state vector",
        label="OnsagerNet", color="#009E73", role="baseline", capabilities=Capabilities(energy=True),
    ),
    "res_onsagernet": ModelInfo(
        model="mesodyn.baselines.res_onsagernet:ResOnsagerNet", config=f"{_CONFIGS}:ResOnsagerNetConfig",
        dims=(1, 2), datasets=None, trainable=True,
        description="SpecOnsNet's M, W and Euler step with a residual MLP for mu (no gradient structure)",
        label="Res-OnsagerNet", color="#CC79A7", role="baseline",
        capabilities=Capabilities(operators=True, steppers=("euler", "sbdf1")),
    ),
    "speconsnet_true_v": ModelInfo(
        model="mesodyn.baselines.true_v:SpecOnsNetTrueV", config=f"{_CONFIGS}:TrueVConfig", dims=(1, 2),
        datasets=("allen_cahn", "allen_cahn_2d", "kdv"), trainable=True,
        description="ablation: learned M and W, V fixed to the true energy",
        label="SpecOnsNet with true V", color="#56B4E9", role="ablation", requires="energy",
        capabilities=Capabilities(energy=True, operators=True, dissipation=True, steppers=("euler", "sbdf1"),
                                  energy_parts=True),
    ),
}


def import_object(path: str) -> Any:
    """Import ``"package.module:Name"``."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def model_info(name: Any) -> ModelInfo:
    """The registry entry of model ``name``; ``ValueError`` naming the registered models otherwise."""
    if name not in MODELS:
        raise ValueError(f"model name must be one of {', '.join(sorted(MODELS))}, got {name!r}.")
    return MODELS[name]


def dataset_info(name: Any) -> DatasetInfo:
    """The registry entry of data set ``name`` (a paper data set or a registered user data set); ``ValueError``
    naming the registered data sets otherwise."""
    if name in DATASETS:
        return DATASETS[name]
    if name in USER_DATASETS:
        return USER_DATASETS[name]
    raise ValueError(f"data set must be one of {', '.join([*DATASETS, *USER_DATASETS])}, got {name!r}.")


def is_chain(name: str) -> bool:
    """Whether data set ``name`` is simulated as a microscopic chain (and so has a micro file and slow time)."""
    return dataset_info(name).kind == "chain"


def ndim(name: str) -> int:
    """The grid dimension of data set ``name`` (1 or 2)."""
    return dataset_info(name).ndim


def true_energy_system(name: str | None) -> str | None:
    """The system whose true energy is known for data set ``name``; ``None`` for none or an unknown name."""
    info = DATASETS.get(name or "", USER_DATASETS.get(name or ""))
    return None if info is None else info.energy


def diagnosable_models() -> tuple[str, ...]:
    """The models the energy and operator diagnostics can read: those with an energy and Fourier operators."""
    return tuple(name for name, info in MODELS.items()
                 if info.capabilities.energy and info.capabilities.operators)


# -- data sets of the user's own ----------------------------------------------------------------------------------
USER_DATASETS: dict[str, DatasetInfo] = {}
"""The user data sets joined from a config by :func:`register_user_datasets` (empty until then)."""

# the equations a user data set may declare, with the system whose true energy the diagnostics then know (none for
# Cahn-Hilliard: its classical step and its linear dynamics are known, its energy is not among the diagnostics')
_DECLARABLE_PDES = {"allen_cahn": "allen_cahn", "kdv": "kdv", "cahn_hilliard": None}


def user_datasets(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The ``data`` entries of ``config`` that name a file of the user's own (those with a ``path``)."""
    return {name: entry for name, entry in (config.get("data") or {}).items()
            if name not in DATASETS and isinstance(entry, Mapping) and "path" in entry}


def user_dataset_info(name: str, entry: Mapping[str, Any], *, base: str | os.PathLike | None = None) -> DatasetInfo:
    """The :class:`DatasetInfo` of user data set ``name`` from its config entry (``path``, optional ``label`` and
    ``pde``), its dimension and shape read from the header of ``u`` in the file (no values are read).

    Raises
    ------
    mesodyn.fields.FieldsContractError
        One sentence where the file does not exist, is not netCDF or its ``u`` has other dims than
        (sample, time, x) or (sample, time, y, x).
    """
    from mesodyn.fields import FIELD_DIMS, FieldsContractError, open_fields

    path = str(entry["path"])
    where = path if base is None or os.path.isabs(path) else os.path.join(str(base), path)
    with open_fields(where) as ds:
        if "u" not in ds:
            raise FieldsContractError(f"fields file {path}: has no variable 'u'.")
        dims, shape = ds["u"].dims, tuple(int(n) for n in ds["u"].shape)
    if dims not in FIELD_DIMS:
        raise FieldsContractError(f"fields file {path}: 'u' has dims {dims}; expected (sample, time, x) or "
                                  "(sample, time, y, x).")
    pde = entry.get("pde")
    return DatasetInfo(kind="user", ndim=len(dims) - 2, pde=pde, label=str(entry.get("label", name)),
                       energy=_DECLARABLE_PDES.get(pde) if pde else None, published=None, path=path, shape=shape)


def register_user_datasets(config: Mapping[str, Any], *, base: str | os.PathLike | None = None) -> dict[str, DatasetInfo]:
    """Join the user data sets of ``config`` (:func:`user_datasets`) to the registry, replacing any registered
    before; return them. ``base``: the folder relative paths are read from (default the working directory)."""
    found = {name: user_dataset_info(name, entry, base=base) for name, entry in user_datasets(config).items()}
    USER_DATASETS.clear()
    USER_DATASETS.update(found)
    return found
