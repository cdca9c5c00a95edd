"""Provenance attributes attached to every output (netCDF, tables, figures).

No timestamps are recorded on purpose: the same config on the same machine must give
byte-identical files.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from mesodyn import __version__

__all__ = ["git_commit", "provenance_attrs", "to_netcdf_attrs"]


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the source tree mesodyn was imported from, ``-dirty`` if it has local changes.

    Returns ``"unknown"`` outside a git checkout (e.g. an installed wheel). The environment variable
    ``MESODYN_GIT_COMMIT`` overrides the lookup (for builds from an archive, or to pin it in tests).
    """
    if os.environ.get("MESODYN_GIT_COMMIT"):
        return os.environ["MESODYN_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def provenance_attrs(config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The provenance attributes: package version, git commit and the config as canonical JSON."""
    return {
        "mesodyn_version": __version__,
        "git_commit": git_commit(),
        "config": json.dumps(_jsonable(config or {}), sort_keys=True),
    }


def to_netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Turn arbitrary parameters into values netCDF accepts (numbers and strings).

    Nested mappings and sequences become JSON strings, booleans become 0/1, ``None`` becomes ``"none"``.
    """
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        value = _jsonable(value)
        if isinstance(value, bool):
            out[key] = int(value)
        elif value is None:
            out[key] = "none"
        elif isinstance(value, (int, float, str)):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True)
    return out
