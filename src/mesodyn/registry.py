"""The one list of data sets and models, with nothing heavy imported.

``DATASETS`` maps a data-set name to what the rest of the package needs to know about it (its kind, dimension,
display name, known PDE and energy, and the published numbers it has, if any); ``MODELS`` maps a model name (the
``name`` key of a model config) to where its class and its config class live, as ``"module:Class"`` strings that are
imported only when needed, and to what the model can do (:class:`Capabilities`). Validating a workflow config
therefore imports no PyTorch model code: the config classes live in the torch-free :mod:`mesodyn.models.configs`.

Nobody else spells out a data-set or model name to decide what to do with it: ask :func:`is_chain`, :func:`ndim`,
:func:`true_energy_system` or a model's :class:`Capabilities` instead. Adding a data set or a model is one entry here
plus its own module (``docs/extending.md``). The order of each dict is the order of the table's rows.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["DatasetInfo", "Capabilities", "ModelInfo", "DATASETS", "MODELS", "import_object", "model_info",
           "dataset_info", "is_chain", "ndim", "true_energy_system", "diagnosable_models"]


@dataclass(frozen=True)
class DatasetInfo:
    """A data set of the workflow.

    Attributes
    ----------
    kind : {"chain", "pde"}
        Simulated as a microscopic chain and coarse-grained, or solved as a continuum PDE.
    ndim : {1, 2}
        Dimension of the field's grid.
    pde : str
        The PDE whose classical step is known for it (the equation itself, or for the chains its leading-order
        long-wave limit).
    label : str
        The name figures and the report show.
    energy : str or None
        The system whose true energy (and operator symbols) is known, a key of
        :data:`mesodyn.diagnostics.SYSTEMS`; ``None`` where none is (the chains' mesoscopic energy is unknown).
    published : str or None
        The authors' name of the data set in their result file (the package data ``paper_table.csv``), whose rows
        the table prints beside ours; ``None`` where there are no published numbers.
    """

    kind: str
    ndim: int
    pde: str
    label: str
    energy: str | None = None
    published: str | None = None


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
        The values ``step(u, dt, stepper=...)`` may take; empty: the model has one step and no ``stepper`` option.
    """

    energy: bool = False
    operators: bool = False
    dissipation: bool = False
    steppers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its class and config class (``"module:Class"``), the field dimensions it supports,
    the data sets it applies to (``None``: any data set of a supported dimension), whether it has trainable
    parameters, a one-line description, its name in figures (``label``, as the paper names it) and its colour,
    its ``role`` in the comparison (``"paper"``: the paper's model, ``"classical"``, ``"baseline"``: a learned
    baseline, ``"ablation"``) and what it can do (:class:`Capabilities`)."""

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

    def applies_to(self, dataset: str) -> bool:
        info = DATASETS.get(dataset)
        if info is None:
            return self.datasets is None
        return info.ndim in self.dims and (self.datasets is None or dataset in self.datasets)


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
_ONSAGER_STEPPERS = ("euler", "sbdf1", "stabilized")  # mesodyn.models.configs.STEPPERS

MODELS: dict[str, ModelInfo] = {
    "speconsnet": ModelInfo(
        model="mesodyn.onsager.model:SpecOnsNet", config=f"{_CONFIGS}:SpecOnsNetConfig", dims=(1, 2),
        datasets=None, trainable=True, description="spectral Onsager network (the paper's model)",
        label="SpecOnsNet", color="#0072B2", role="paper",
        capabilities=Capabilities(energy=True, operators=True, dissipation=True, steppers=_ONSAGER_STEPPERS),
    ),
    "classical": ModelInfo(
        model="mesodyn.baselines.classical:Classical", config=f"{_CONFIGS}:ClassicalConfig", dims=(1, 2),
        datasets=("allen_cahn", "allen_cahn_2d", "kdv", "fput", "fene"), trainable=False,
        description="the true PDE (chains: its KdV/mKdV limit) stepped with SBDF1; nothing trained",
        label="classical solver", color="#000000", role="classical",
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
        label="SpecOnsNet with true V", color="#56B4E9", role="ablation",
        capabilities=Capabilities(energy=True, operators=True, dissipation=True, steppers=("euler", "sbdf1")),
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
    """The registry entry of data set ``name``; ``ValueError`` naming the registered data sets otherwise."""
    if name not in DATASETS:
        raise ValueError(f"data set must be one of {', '.join(DATASETS)}, got {name!r}.")
    return DATASETS[name]


def is_chain(name: str) -> bool:
    """Whether data set ``name`` is simulated as a microscopic chain (and so has a micro file and slow time)."""
    return dataset_info(name).kind == "chain"


def ndim(name: str) -> int:
    """The grid dimension of data set ``name`` (1 or 2)."""
    return dataset_info(name).ndim


def true_energy_system(name: str | None) -> str | None:
    """The system whose true energy is known for data set ``name``; ``None`` for none or an unknown name."""
    info = DATASETS.get(name or "")
    return None if info is None else info.energy


def diagnosable_models() -> tuple[str, ...]:
    """The models the energy and operator diagnostics can read: those with an energy and Fourier operators."""
    return tuple(name for name, info in MODELS.items()
                 if info.capabilities.energy and info.capabilities.operators)
