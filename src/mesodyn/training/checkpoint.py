"""Run state on disk: the resume checkpoint ``last.pt``, the run files derived from it, and the fingerprints that
decide whether a checkpoint may be resumed.

Every file is written atomically with the normal file mode (:mod:`mesodyn._io`). The run files (``weights.pt``,
``model.json``, ``history.csv``, ``split.json``, ``summary.json``) are a function of the checkpoint alone, so a
resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mesodyn._io import atomic_write

__all__ = ["CHECKPOINT_FORMAT", "OUTPUT_FILES", "HISTORY_COLUMNS", "source_fingerprint", "load_checkpoint",
           "save_checkpoint", "write_run_files", "torch_bytes", "json_bytes", "cpu_state", "to_cpu"]

CHECKPOINT_FORMAT = 1
OUTPUT_FILES = ("weights.pt", "model.json", "history.csv", "split.json")
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "lr")

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/mesodyn


def _module_file(name: str) -> Path | None:
    """The source file of mesodyn module ``name`` (``None`` for modules outside mesodyn)."""
    if name != "mesodyn" and not name.startswith("mesodyn."):
        return None
    base = _PACKAGE_ROOT.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, package: str) -> set[str]:
    """The mesodyn modules that the source file ``path`` (module of ``package``) imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if _module_file(name) is not None}


def _import_closure(roots: set[str]) -> set[Path]:
    files: set[Path] = set()
    todo = list(roots)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        files.add(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo.extend(_imported_modules(path, package))
    return files


def source_fingerprint(model: Any) -> str:
    """Hash of the code that shapes a run: the training package and the modules the model's class imports,
    followed through mesodyn's own imports (its own code only, not its neighbours' in the registry), so that
    a checkpoint made by other code is never resumed. A model defined outside mesodyn adds its own file."""
    roots = {"mesodyn.training.loop", type(model).__module__}
    files = _import_closure(roots)
    module_file = getattr(sys.modules.get(type(model).__module__), "__file__", None)
    if module_file is not None:
        files.add(Path(module_file).resolve())
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(files):
        h.update(str(path.relative_to(_PACKAGE_ROOT) if _PACKAGE_ROOT in path.parents else path.name).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


# -- serialisation ------------------------------------------------------------------------------------------
def torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _history_bytes(history: list[dict[str, float]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in history:
        writer.writerow([int(row["epoch"])] + [repr(float(row[c])) for c in HISTORY_COLUMNS[1:]])
    return buf.getvalue().encode()


def cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    return obj


# -- files --------------------------------------------------------------------------------------------------
def write_run_files(out_dir: Path, ckpt: Mapping[str, Any]) -> None:
    """Everything but ``last.pt``, derived from a checkpoint so that a resumed run writes the same bytes."""
    atomic_write(out_dir / "weights.pt", torch_bytes(ckpt["best_state"]))
    atomic_write(out_dir / "model.json", json_bytes(ckpt["model_config"]))
    atomic_write(out_dir / "history.csv", _history_bytes(ckpt["history"]))
    atomic_write(out_dir / "split.json", json_bytes(ckpt["split"]))
    summary = {
        "best_epoch": ckpt["best_epoch"],
        "best_valid_loss": ckpt["best_loss"],
        "epochs": ckpt["epoch"],
        "stop_reason": ckpt["stop_reason"],
        "train": ckpt["train"],
        "data_fingerprint": ckpt["fingerprint"]["data"],
        "n_parameters": ckpt["n_parameters"],
    }
    atomic_write(out_dir / "summary.json", json_bytes(summary))


def save_checkpoint(out_dir: Path, ckpt: dict[str, Any]) -> None:
    """Write ``last.pt`` and the run files."""
    ckpt["optimizer"] = to_cpu(ckpt["optimizer"])
    atomic_write(out_dir / "last.pt", torch_bytes(ckpt))
    write_run_files(out_dir, ckpt)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or ``None`` (with a warning) if it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file is not worth failing the run for
        warnings.warn(f"ignoring unreadable checkpoint {path}: {exc}", RuntimeWarning, stacklevel=3)
        return None
