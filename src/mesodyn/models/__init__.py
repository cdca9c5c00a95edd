"""Every model behind one interface: build, check, complete from data, and load.

The registry (:mod:`mesodyn.registry`) maps a config's ``name`` to the model class; the classes are imported only
when a model is built, so :func:`check_model_config` runs without PyTorch.

Examples
--------
>>> config = config_for_data({"name": "fno"}, data)          # doctest: +SKIP
>>> model = build_model(config)                               # doctest: +SKIP
>>> model = load_model("results/models/kdv/fno/seed42")       # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mesodyn.models.configs import GRID_KEYS, ModelConfig
from mesodyn.registry import DATASETS, MODELS, Capabilities, import_object, model_info

__all__ = ["build_model", "check_model_config", "config_for_data", "with_grid", "load_model", "model_class", "config_class",
           "cast_module", "capabilities", "model_name", "MODELS"]


def config_class(name: Any) -> type[ModelConfig]:
    """The config class of registered model ``name`` (no PyTorch imported)."""
    return import_object(model_info(name).config)


def model_class(name: Any):
    """The model class of registered model ``name`` (imports its module)."""
    return import_object(model_info(name).model)


def check_model_config(config: Mapping[str, Any], *, dataset: str | None = None) -> None:
    """Validate a model config before any data exist (the grid keys are replaced by placeholders).

    With ``dataset``, also check that the model applies to that data set. Raises ``ValueError`` in one sentence.
    """
    name = config.get("name")
    info = model_info(name)
    if dataset is not None and not info.applies_to(dataset):
        where = ", ".join(info.datasets) if info.datasets else f"{'/'.join(map(str, info.dims))}-D data"
        if info.requires is not None and dataset not in DATASETS:
            where += f", or a data set of your own of that dimension that declares its {info.requires} (pde)"
        raise ValueError(f"model {name!r} does not apply to data set {dataset!r} (it applies to {where}).")
    config_class(name).check(config, dataset=dataset)


def with_grid(config: Mapping[str, Any], grid: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with the data's grid keys; a grid key given by hand that contradicts them is an
    error."""
    options = copy.deepcopy(dict(config))
    for key in GRID_KEYS:
        if key in options:
            given = np.atleast_1d(np.asarray(options[key], dtype=np.float64))
            wanted = np.atleast_1d(np.asarray(grid[key], dtype=np.float64))
            if given.shape != wanted.shape or not np.allclose(given, wanted, rtol=1e-9, atol=0):
                raise ValueError(f"model config '{key}' = {options[key]!r} contradicts the data, which give "
                                 f"{grid[key]!r}.")
        options[key] = copy.deepcopy(grid[key])
    return options


def config_for_data(config: Mapping[str, Any], *, grid: Mapping[str, Any], dataset: str | None = None,
                    attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The complete, validated config of a model for a data set: ``config`` with the grid (``shape``,
    ``length``, ``dt`` from :func:`mesodyn.fields.grid_from_data`) and the data-dependent keys filled in.

    A grid key given by hand that contradicts the data is an error; other user keys win over the data's.
    """
    options = with_grid(config, grid)
    cls = config_class(options.get("name"))
    if dataset is not None and dataset in DATASETS and not model_info(cls.name).applies_to(dataset):
        check_model_config(options, dataset=dataset)  # raises the one-sentence error
    extra = cls.data_options(options, dataset=dataset, attrs=attrs or {})
    return cls.from_options({**extra, **options}).to_dict()


def build_model(config: Mapping[str, Any]):
    """A model with fresh weights from its complete config (dispatch on ``config["name"]``)."""
    return model_class(config.get("name"))(**{k: v for k, v in config.items() if k != "name"})


def cast_module(model, *, device, dtype):
    """Move ``model`` to ``device`` and cast real floating tensors to ``dtype``, complex ones to the matching
    complex type (``Module.to(dtype)`` would drop the imaginary part of complex buffers)."""
    import torch

    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128

    def convert(t):
        if t.is_floating_point():
            return t.to(device=device, dtype=dtype)
        if t.is_complex():
            return t.to(device=device, dtype=complex_dtype)
        return t.to(device=device)

    return model._apply(convert)


def load_model(path: str | os.PathLike, *, builder=None, device: str = "cpu", weights: str = "weights.pt",
               dtype=None):
    """Rebuild a saved model from ``model.json`` and its weights (``torch.load(..., weights_only=True)``).

    The model takes the precision of the saved weights (``dtype`` overrides it; a model without floating
    weights, such as ``classical``, defaults to float32) and is returned in eval mode. ``builder`` replaces
    :func:`build_model` (for models outside the registry).
    """
    import torch

    from mesodyn.training.settings import resolve_device

    path = Path(path)
    config = json.loads((path / "model.json").read_text())
    state = torch.load(path / weights, map_location="cpu", weights_only=True)
    if dtype is None:
        floats = [v.dtype for v in state.values() if v.is_floating_point()]
        dtype = floats[0] if floats else torch.float32
    model = (builder or build_model)(config)
    cast_module(model, device=resolve_device(device), dtype=dtype)
    model.load_state_dict(state)
    return model.eval()


def model_name(model: Any) -> str:
    """The name of ``model``: a model of the interface has ``name``; an object outside it (a stand-in with
    ``step``) is named by its ``config``'s ``name``, else by its class, so it is read here, once, for every
    caller."""
    name = getattr(model, "name", None)
    if not isinstance(name, str):
        name = dict(getattr(model, "config", {}) or {}).get("name", type(model).__name__)
    return str(name)


def capabilities(model: Any) -> Capabilities:
    """What ``model`` offers beyond ``step``: what a model of the interface declares
    (:attr:`mesodyn.models.base.Model.capabilities`). An object outside the interface (a stand-in with ``step`` and
    perhaps ``energy``) declares nothing, so its methods are read here, once, for every caller."""
    declared = getattr(type(model), "capabilities", None)
    if isinstance(declared, property):
        return model.capabilities
    return Capabilities(energy=callable(getattr(model, "energy", None)),
                        operators=getattr(model, "operators", None) is not None
                        and getattr(model, "grid", None) is not None,
                        dissipation=callable(getattr(model, "dissipation_rate", None)),
                        steppers=(),
                        energy_parts=callable(getattr(model, "quadratic_coefficients", None))
                        and callable(getattr(model, "local_density", None)))
