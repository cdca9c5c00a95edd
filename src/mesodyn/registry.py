"""The one list of data sets and models, with nothing heavy imported.

``DATASETS`` maps a data-set name to what kind of data it is; ``MODELS`` maps a model name (the ``name`` key of a
model config) to where its class and its config class live, as ``"module:Class"`` strings that are imported only
when needed. Validating a workflow config therefore imports no PyTorch model code: the config classes live in the
torch-free :mod:`mesodyn.models.configs`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["DatasetInfo", "ModelInfo", "DATASETS", "MODELS", "import_object", "model_info"]


@dataclass(frozen=True)
class DatasetInfo:
    """A data set of the workflow: ``kind`` ("chain" or "pde"), field dimension ``ndim``, and the PDE whose
    classical step is known for it (the equation itself, or for the chains its leading-order long-wave limit)."""

    kind: str
    ndim: int
    pde: str


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its class and config class (``"module:Class"``), the field dimensions it supports,
    the data sets it applies to (``None``: any data set of a supported dimension), whether it has trainable
    parameters, and a one-line description."""

    model: str
    config: str
    dims: tuple[int, ...]
    datasets: tuple[str, ...] | None
    trainable: bool
    description: str

    def applies_to(self, dataset: str) -> bool:
        info = DATASETS.get(dataset)
        if info is None:
            return self.datasets is None
        return info.ndim in self.dims and (self.datasets is None or dataset in self.datasets)


DATASETS: dict[str, DatasetInfo] = {
    "fput": DatasetInfo(kind="chain", ndim=1, pde="kdv_limit"),
    "fene": DatasetInfo(kind="chain", ndim=1, pde="mkdv_limit"),
    "kdv": DatasetInfo(kind="pde", ndim=1, pde="kdv"),
    "allen_cahn": DatasetInfo(kind="pde", ndim=1, pde="allen_cahn"),
    "allen_cahn_2d": DatasetInfo(kind="pde", ndim=2, pde="allen_cahn"),
}

_CONFIGS = "mesodyn.models.configs"

MODELS: dict[str, ModelInfo] = {
    "speconsnet": ModelInfo(
        model="mesodyn.onsager.model:SpecOnsNet", config=f"{_CONFIGS}:SpecOnsNetConfig", dims=(1, 2),
        datasets=None, trainable=True, description="spectral Onsager network (the paper's model)",
    ),
    "speconsnet_true_v": ModelInfo(
        model="mesodyn.baselines.true_v:SpecOnsNetTrueV", config=f"{_CONFIGS}:TrueVConfig", dims=(1, 2),
        datasets=("allen_cahn", "allen_cahn_2d", "kdv"), trainable=True,
        description="ablation: learned M and W, V fixed to the true energy",
    ),
    "classical": ModelInfo(
        model="mesodyn.baselines.classical:Classical", config=f"{_CONFIGS}:ClassicalConfig", dims=(1, 2),
        datasets=("allen_cahn", "allen_cahn_2d", "kdv", "fput", "fene"), trainable=False,
        description="the true PDE (chains: its KdV/mKdV limit) stepped with SBDF1; nothing trained",
    ),
    "fno": ModelInfo(
        model="mesodyn.baselines.fno:FNOStep", config=f"{_CONFIGS}:FNOConfig", dims=(1, 2), datasets=None,
        trainable=True, description="Fourier neural operator (neuraloperator library), u+ = u + dt FNO(u)",
    ),
    "onsagernet": ModelInfo(
        model="mesodyn.baselines.onsagernet:OnsagerNet", config=f"{_CONFIGS}:OnsagerNetConfig", dims=(1,),
        datasets=None, trainable=True, description="OnsagerNet on the grid values as one state vector",
    ),
    "res_onsagernet": ModelInfo(
        model="mesodyn.baselines.res_onsagernet:ResOnsagerNet", config=f"{_CONFIGS}:ResOnsagerNetConfig",
        dims=(1, 2), datasets=None, trainable=True,
        description="SpecOnsNet's M, W and Euler step with a residual MLP for mu (no gradient structure)",
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
