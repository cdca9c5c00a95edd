"""Workflow configuration: validation against the JSON schema with one clear sentence per mistake."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["ConfigError", "load_schema", "validate_config", "load_config", "fit_models", "fit_runs", "run_model_config"]

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


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a validated copy of ``config`` with schema defaults filled in.

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
    _check_consistency(instance)
    return _sorted(instance)


def _sorted(value: Any) -> Any:
    """Mappings with sorted keys, recursively: the same settings always look the same (Snakemake compares
    ``params:`` to decide reruns, so key order must not depend on how a config file was written)."""
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _check_consistency(config: Mapping[str, Any]) -> None:
    """Checks that span several keys (the schema checks keys one by one), done by the data sets' own config
    classes so that a mistake stops the workflow at start-up rather than inside a job."""
    from mesodyn.chains.models import chain_from_config
    from mesodyn.continuum.datasets import config_for
    from mesodyn.registry import DATASETS, is_chain

    for name, params in config.get("data", {}).items():
        if name == "threads":  # the data jobs' CPU threads, not a data set
            continue
        build = chain_from_config if name in DATASETS and is_chain(name) else config_for
        try:
            build(name, params)
        except ValueError as exc:
            raise ConfigError(f"config section 'data.{name}' is inconsistent: {str(exc).rstrip('.')}.") from None
    _check_fit(config)


def _check_fit(config: Mapping[str, Any]) -> None:
    """Every model config valid, every (data set, model) combination possible, every data set's training settings
    consistent: checked at start-up so that no job fails on a config mistake."""
    from mesodyn.models import check_model_config
    from mesodyn.registry import DATASETS
    from mesodyn.training.settings import train_settings

    fit = config.get("fit", {})
    runs = {run: run_model_config(entry) for run, entry in fit.get("models", {}).items()}
    for run, options in runs.items():
        try:
            check_model_config(options)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"config 'fit.models.{run}' is invalid: {str(exc).rstrip('.')}.") from None
    for dataset in config.get("datasets", []):
        for run in fit_models(config, dataset):
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
        if not runs or not fit_models(config, dataset):
            continue
        for run in fit_models(config, dataset):
            try:
                train_settings(fit, dataset=dataset, seed=fit.get("seeds", [0])[0], run=run)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"config 'fit' training settings of run '{run}' on data set '{dataset}' "
                                  f"(fit.train, fit.datasets.{dataset}, fit.models.{run}.train) are inconsistent: "
                                  f"{str(exc).rstrip('.')}.") from None


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


def load_config(path: str | Path, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(raw).__name__}.")
    return validate_config(raw, schema)
