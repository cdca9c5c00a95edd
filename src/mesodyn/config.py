"""Workflow configuration: validation against the JSON schema with one clear sentence per mistake."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["ConfigError", "load_schema", "validate_config", "read_config_file", "load_config", "fit_models", "fit_runs",
           "run_model_config", "machine_memory"]

logger = logging.getLogger(__name__)

# package data, so that a wheel install validates configs as a source checkout does
SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration mistake, described in one sentence that names the key."""


def load_schema(path: str | Path | None = None) -> dict[str, Any]:
    with open(path or SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _sentence(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        where = f"under '{key}'" if error.absolute_path else "at the top level"
        return f"unknown config key '{extra[0]}' {where}; allowed keys: {allowed}."
    if error.validator == "required":
        return f"config key '{key}' is missing a required entry: {error.message}."
    if error.validator in ("oneOf", "anyOf") and "description" in error.schema:
        return f"config key '{key}' is {error.instance!r}; it must be {error.schema['description']}."
    if error.validator == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        return f"config key '{key}' is {error.instance!r}; it must be one of {options}."
    return f"config key '{key}' = {error.instance!r} is invalid: {error.message}."


def _coerce_numbers(schema: Mapping[str, Any], instance: dict[str, Any]) -> None:
    """Turn strings such as ``'4e-5'`` into numbers where the schema wants a number.

    YAML 1.1 (PyYAML, and so Snakemake's config loader) reads ``4e-5`` without a decimal point as a string.
    """
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for name, value in list(instance.items()):
        sub = props.get(name, extra if isinstance(extra, Mapping) else None)
        if not isinstance(sub, Mapping):
            continue
        if isinstance(value, dict):
            _coerce_numbers(sub, value)
        elif isinstance(value, str) and sub.get("type") == "number":
            try:
                instance[name] = float(value)
            except ValueError:
                pass


def _fill_defaults(schema: Mapping[str, Any], instance: dict[str, Any]) -> None:
    for name, sub in schema.get("properties", {}).items():
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(name), dict):
            _fill_defaults(sub, instance[name])
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        for name, value in instance.items():
            if name not in schema.get("properties", {}) and isinstance(value, dict):
                _fill_defaults(extra, value)


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None, *,
                    data: Collection[str] | None = None, fits: Collection[tuple[str, str | None]] | None = None,
                    runs_here: bool = False) -> dict[str, Any]:
    """Return a validated copy of ``config`` with schema defaults filled in.

    Every key is checked against the schema; the checks that span several keys are scoped to what a command
    uses, so that a command is not stopped by a part of the config it does not touch.

    Parameters
    ----------
    data
        The ``data`` sections whose consistency and limits (memory, ``max_k``, grid sizes) are checked;
        default every one (the workflow), ``()`` none (``mesodyn fit`` reads a finished file).
    fits
        The ``(dataset, run)`` pairs whose model and training settings are checked (``run`` ``None``: a registered
        model outside ``fit.models``); default every pair the workflow fits.
    runs_here
        The checked fits run in this process (the command line): a requested GPU that is absent is then an
        error, not a warning (a workflow's jobs may run on another machine, a cluster's GPU node).

    Raises
    ------
    ConfigError
        One sentence naming the offending key, e.g.
        ``config key 'data.fput.n_samples' = -1 is invalid: -1 is less than the minimum of 1.``
    """
    schema = schema if schema is not None else load_schema()
    instance = copy.deepcopy(dict(config))
    _coerce_numbers(schema, instance)
    _fill_defaults(schema, instance)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise ConfigError(_sentence(error))
    _check_consistency(instance, data=data, fits=fits, runs_here=runs_here)
    return _sorted(instance)


def _sorted(value: Any) -> Any:
    """Mappings with sorted keys, recursively: the same settings always look the same (Snakemake compares
    ``params:`` to decide reruns, so key order must not depend on how a config file was written)."""
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _check_consistency(config: Mapping[str, Any], *, data: Collection[str] | None = None,
                       fits: Collection[tuple[str, str | None]] | None = None, runs_here: bool = False) -> None:
    """Checks that span several keys (the schema checks keys one by one), done by the data sets' own config
    classes so that a mistake stops the workflow at start-up rather than inside a job."""
    from mesodyn.registry import user_datasets

    _check_names(config)
    users = user_datasets(config)
    # data.threads: the jobs' threads; a user data set's entry names its file, which is checked on its own
    names = [n for n in config.get("data", {}) if n != "threads" and n not in users]
    for name in names if data is None else [n for n in data if n in names]:
        _check_data(config, name)
    _register_user_data(config, users if data is None else {n: users[n] for n in data if n in users})
    if fits is None:
        fits = [(dataset, run) for dataset in config.get("datasets", []) for run in fit_models(config, dataset)]
    _check_fit(config, fits, data=[*names, *users] if data is None else data, runs_here=runs_here)


def _check_names(config: Mapping[str, Any]) -> None:
    """Every data set named in ``datasets``, ``fit.datasets`` and ``figures.sweep_factors`` is one of the paper's or
    one of the user's own (a ``data`` entry with a ``path``)."""
    from mesodyn.registry import DATASETS, user_datasets

    known = [*DATASETS, *user_datasets(config)]
    for i, name in enumerate(config.get("datasets", [])):
        if name not in known:
            raise ConfigError(f"config key 'datasets.{i}' is {name!r}; it must be one of {', '.join(DATASETS)}, or a "
                              f"data set of your own named with its file under data (data.{name}.path, see "
                              "docs/your-data.md).")
    for section, entries in (("fit.datasets", config.get("fit", {}).get("datasets", {})),
                             ("figures.sweep_factors", config.get("figures", {}).get("sweep_factors", {}))):
        extra = sorted(set(entries) - set(known))
        if extra:
            raise ConfigError(f"unknown config key '{extra[0]}' under '{section}'; allowed keys: "
                              f"{', '.join(sorted(known))}.")


def _register_user_data(config: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]]) -> None:
    """Join the user data sets to the registry (:func:`mesodyn.registry.register_user_datasets`), reading each file's
    header: a path that does not exist, a file that is not netCDF or a ``u`` of other dims stops here."""
    from mesodyn.fields import FieldsContractError
    from mesodyn.registry import USER_DATASETS, user_dataset_info

    for name, entry in users.items():
        try:
            info = user_dataset_info(name, entry)
        except FieldsContractError as exc:
            raise ConfigError(f"config 'data.{name}.path': {str(exc).rstrip('.')}.") from None
        if entry.get("epsilon") is not None and info.pde != "allen_cahn":
            raise ConfigError(f"config 'data.{name}.epsilon' is Allen-Cahn's parameter; declare pde: allen_cahn "
                              "or leave it out.")
        if entry.get("kappa") is not None and info.pde != "cahn_hilliard":
            raise ConfigError(f"config 'data.{name}.kappa' is Cahn-Hilliard's parameter; declare pde: "
                              "cahn_hilliard or leave it out.")
        if info.pde == "cahn_hilliard" and entry.get("kappa") is None:
            raise ConfigError(f"config 'data.{name}' declares pde: cahn_hilliard; give its kappa too "
                              "(data.{name}.kappa).".replace("{name}", name))
        USER_DATASETS[name] = info


def _check_data(config: Mapping[str, Any], name: str) -> None:
    """One data section: its config class, the coarse grid of the chains, and the memory its fields need."""
    from mesodyn.chains.models import chain_from_config
    from mesodyn.coarse import check_grid
    from mesodyn.continuum.datasets import config_for
    from mesodyn.registry import DATASETS, is_chain

    params = config["data"][name]
    chain = name in DATASETS and is_chain(name)
    try:
        built = (chain_from_config if chain else config_for)(name, params)
        if chain:
            check_grid(config.get("coarse", {}).get("n_grid", 256), max_k=built.max_k)
    except ValueError as exc:
        key = "coarse.n_grid" if chain and "n_grid" in str(exc) else f"data.{name}"
        raise ConfigError(f"config section '{key}' is inconsistent: {str(exc).rstrip('.')}.") from None
    points = built.n_grid ** built.ndim if not chain else config.get("coarse", {}).get("n_grid", 256)
    # a chain ensemble also holds the sites' state, velocity and strain of every frame until it is written
    per_frame = points if not chain else points + 4 * built.n_sites
    n_samples = int(params.get("n_samples", getattr(built, "n_samples", 1)))
    need = 8 * n_samples * built.n_frames * per_frame
    have = machine_memory()
    if have and need > have:
        raise ConfigError(f"config section 'data.{name}' needs about {_bytes(need)} of memory ({n_samples} "
                          f"trajectories x {built.n_frames} frames x {per_frame} values x 8 bytes), more than this "
                          f"machine's {_bytes(have)}; reduce data.{name}.n_samples, t_final or the grid.")


def machine_memory() -> int | None:
    """Total physical memory of this machine in bytes (``None`` where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"  # pragma: no cover


def _check_fit(config: Mapping[str, Any], fits: Collection[tuple[str, str | None]], *, data: Collection[str],
               runs_here: bool) -> None:
    """Every model config valid, every (data set, model) combination possible, every data set's training settings
    consistent and within the data's limits: checked at start-up so that no job fails on a config mistake."""
    from mesodyn.models import check_model_config
    from mesodyn.registry import DATASETS

    fit = config.get("fit", {})
    entries = fit.get("models", {})
    used = set(entries) if fits is None else {run for _, run in fits if run in entries}
    runs = {run: run_model_config(entry) for run, entry in entries.items()}
    for run in sorted(used, key=list(entries).index):
        try:
            check_model_config(runs[run])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"config 'fit.models.{run}' is invalid: {str(exc).rstrip('.')}.") from None
    for dataset, run in fits:
        if run is None:
            _check_training(config, dataset, None, data=data, runs_here=runs_here)
            continue
        if run not in runs:
            raise ConfigError(f"config 'fit.datasets.{dataset}.models' names '{run}', which is not a run of "
                              f"fit.models ({', '.join(sorted(runs))}).")
        try:
            check_model_config(runs[run], dataset=dataset)
        except (ValueError, TypeError) as exc:
            hint = "" if dataset not in DATASETS else (
                f"; list the runs for it in fit.datasets.{dataset}.models")
            raise ConfigError(f"config 'fit.models.{run}' cannot be fitted on '{dataset}': "
                              f"{str(exc).rstrip('.')}{hint}.") from None
        _check_training(config, dataset, run, data=data, runs_here=runs_here)


def _check_training(config: Mapping[str, Any], dataset: str, run: str | None, *, data: Collection[str],
                    runs_here: bool) -> None:
    """One run's training settings: consistent, the split non-empty and the window within the frames of the data
    set's config (when the data set is in scope), the device present."""
    from mesodyn.training.settings import TrainConfig, train_settings

    fit = config.get("fit", {})
    where = (f"config 'fit' training settings of run '{run}' on data set '{dataset}' (fit.train, "
             f"fit.datasets.{dataset}, fit.models.{run}.train)" if run is not None else
             f"config 'fit' training settings on data set '{dataset}' (fit.train, fit.datasets.{dataset})")
    try:
        settings = TrainConfig.from_dict(train_settings(fit, dataset=dataset, seed=fit.get("seeds", [0])[0],
                                                        run=run))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where} are inconsistent: {str(exc).rstrip('.')}.") from None
    params = config.get("data", {}).get(dataset)
    if dataset in data and isinstance(params, Mapping) and "n_samples" in params:
        _check_sizes(where, settings, n=int(params["n_samples"]), frames=_frames(dataset, params),
                     trajectories=f"data.{dataset}.n_samples = {int(params['n_samples'])} trajectories",
                     produced=f"that data.{dataset} produces (t_final, dt and save_every)")
    elif dataset in data and isinstance(params, Mapping) and "path" in params:
        from mesodyn.registry import USER_DATASETS

        shape = USER_DATASETS[dataset].shape if dataset in USER_DATASETS else None
        if shape is not None:  # a user's file: its header gave the sizes
            _check_sizes(where, settings, n=shape[0], frames=shape[1],
                         trajectories=f"the {shape[0]} trajectories of {params['path']}",
                         produced=f"of {params['path']}")
    if settings.device == "cuda":
        _check_cuda(where, runs_here=runs_here)


def _check_sizes(where: str, settings: Any, *, n: int, frames: int | None, trajectories: str, produced: str) -> None:
    """The split against the trajectories and the window against the frames of a data set."""
    from mesodyn.fields import split_sizes

    sizes = split_sizes(n, settings.split)
    counts = "/".join(map(str, sizes))
    if min(sizes[:2]) < 1:
        part = "train" if sizes[0] < 1 else "validation"
        raise ConfigError(f"{where}: split {list(settings.split)} leaves the {part} part of {trajectories} empty "
                          f"({counts}).")
    if sizes[2] < 1:  # a fit still runs; its evaluation has no held-out trajectory
        logger.warning("%s: split %s leaves the test part of %s empty (%s): nothing is evaluated on held-out data.",
                       where, list(settings.split), trajectories, counts)
    if frames is not None and settings.window > frames:
        raise ConfigError(f"{where}: window = {settings.window} is longer than the {frames} frames {produced}.")


def _frames(dataset: str, params: Mapping[str, Any]) -> int | None:
    """Frames a data section produces (``None`` for a data set that is not generated here)."""
    from mesodyn.chains.models import chain_from_config
    from mesodyn.continuum.datasets import config_for
    from mesodyn.registry import DATASETS, is_chain

    if dataset not in DATASETS:
        return None
    build = chain_from_config if is_chain(dataset) else config_for
    return build(dataset, dict(params)).n_frames


def _check_cuda(where: str, *, runs_here: bool) -> None:
    import torch

    if torch.cuda.is_available():
        return
    message = (f"{where} ask for device 'cuda', but this machine has no CUDA device (torch "
               f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'})")
    if runs_here:
        raise ConfigError(f"{message}; use device 'auto' or 'cpu'.")
    logger.warning("%s: the fit jobs fail unless they run where one is (a GPU node).", message)


RUN_KEYS = ("seeds", "train")


def run_model_config(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The model config of a ``fit.models`` entry: the entry without the run keys (``seeds``, ``train``)."""
    return {k: v for k, v in entry.items() if k not in RUN_KEYS}


def fit_models(config: Mapping[str, Any], dataset: str) -> list[str]:
    """The run names of ``fit.models`` to fit on ``dataset``: ``fit.datasets.<dataset>.models`` or all."""
    fit = config.get("fit", {})
    chosen = fit.get("datasets", {}).get(dataset, {}).get("models")
    return list(chosen) if chosen is not None else list(fit.get("models", {}))


def fit_runs(config: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """Every ``(dataset, run, seed)`` the workflow fits: the seeds are the run's own ``seeds`` if it has them,
    else ``fit.seeds``. A model without trainable parameters (``classical``) does not depend on the seed and is
    written for the first seed only."""
    from mesodyn.registry import MODELS

    fit = config.get("fit", {})
    out = []
    for dataset in config.get("datasets", []):
        for run in fit_models(config, dataset):
            entry = fit["models"][run]
            seeds = list(entry.get("seeds", fit.get("seeds", [])))
            trainable = MODELS[entry["name"]].trainable
            out.extend((dataset, run, seed) for seed in (seeds if trainable else seeds[:1]))
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file, unvalidated; a file that is missing, unreadable, not YAML, empty or
    not a mapping is a :class:`ConfigError` naming it."""
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or type(exc).__name__}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text (not UTF-8), so not YAML.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}.") from None
    if raw is None:
        raise ConfigError(f"config file {path} is empty; it must hold a mapping of keys (see config/README.md).")
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(raw).__name__}.")
    return raw


def load_config(path: str | Path, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    return validate_config(read_config_file(path), schema)
