"""Training of one-step models on mesoscopic fields, on CPU or GPU, with resume after interruption.

The recipe is the paper's (``experiments.md`` §3): random windows of ``window`` consecutive frames, a
``rollout_steps``-step autoregressive loss with the state detached between steps and the intermediate losses
averaged, Adam, ReduceLROnPlateau on the epoch's training loss, validation every ``valid_every`` epochs and
early stopping after ``early_stopping`` validations without improvement.

What one *epoch* is
-------------------
As in the authors' code (a Lightning epoch over a data set whose items are trajectories): one epoch is one
pass over the training trajectories in a fresh random order, each trajectory contributing **one** window
with a uniformly random start; the windows are grouped in batches of ``batch_size`` and an incomplete last
batch is dropped. An epoch is therefore ``n_train // batch_size`` optimizer steps (700 training trajectories,
batch 32: 21 steps), and at least one step (a batch of all training trajectories) when there are fewer
training trajectories than ``batch_size``. Budgets (``max_epochs``, ``lr_patience``, ``valid_every``) keep the
paper's meaning with this definition. ``batches_per_epoch`` caps an epoch at that many batches (the first
trajectories of the epoch's random order); ``batches_per_epoch: 1`` makes an epoch one random batch, which
ties a CPU budget to optimizer steps whatever the size of the data set.

The loss of one window
----------------------
For a window ``w`` of ``L`` frames and ``K`` rollout steps, every one of the first ``L - K`` frames is a starting
state; step ``k`` (1..K) advances the detached prediction of step ``k - 1`` (the data at ``k = 0``) by one step
and is compared with the frames ``k .. L - K + k - 1`` (mean squared error over all values); the ``K`` losses
are averaged. The gradient therefore never flows through an earlier step: each step learns to map its own
previous output to the data.

Validation uses fixed windows (``valid_windows`` per validation trajectory, starts drawn once from
``split_seed``) so that successive validation losses differ only because the model changed.

Determinism and resume
----------------------
A seed fixes the initial weights (``torch.manual_seed``) and every window draw (a dedicated CPU
``torch.Generator``, so CPU and GPU runs see the same windows). A full checkpoint ``last.pt`` (model, optimizer,
scheduler, RNG states, epoch, best weights, counters, history) is written atomically at every validation
and when training stops. If ``out_dir`` holds a ``last.pt`` whose fingerprint (model config, training config
except ``max_epochs``/``device``, the data, and the source of the ``mesodyn`` package) matches, training
continues from it; on CPU the result is bitwise that of an uninterrupted run. A finished run whose
``max_epochs`` is raised continues from where it stopped.

Precision
---------
``dtype: float32`` by default, as in the paper: the data's own errors (solver, coarse-graining: 1e-4 to 1e-3
relative) are far above float32 round-off, and float32 is 2x (CPU) to 30x+ (most GPUs) faster. ``float64`` is
available for checks that need round-off-level agreement.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

__all__ = [
    "TrainConfig",
    "FitResult",
    "TrainingDivergedError",
    "split_trajectories",
    "grid_from_data",
    "rollout_loss",
    "fit",
    "load_model",
    "resolve_device",
    "train_settings",
]

logger = logging.getLogger(__name__)

OUTPUT_FILES = ("weights.pt", "model.json", "history.csv", "split.json")
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "lr")
_CHECKPOINT_FORMAT = 1


class TrainingDivergedError(RuntimeError):
    """The training loss became non-finite before any validation gave usable weights."""


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the paper's (``experiments.md`` §3).

    Parameters
    ----------
    window : int
        Consecutive frames per training window (paper 11).
    rollout_steps : int
        K, autoregressive steps of the loss (paper 3; 5 for FPUT). Must be smaller than ``window``.
    batch_size : int
        Windows per optimizer step (paper 32; 8 in 2-D).
    batches_per_epoch : int or None
        Cap on the optimizer steps of an epoch; ``None`` (paper): a full pass over the training trajectories.
    lr : float
        Adam learning rate.
    lr_factor, lr_patience, min_lr : float, int, float
        ReduceLROnPlateau on the epoch-mean training loss: multiply the rate by ``lr_factor`` after
        ``lr_patience`` epochs without improvement, never below ``min_lr``.
    max_epochs : int
        Upper bound on epochs (see the module docstring for what an epoch is).
    valid_every : int
        Validate (and checkpoint) every this many epochs; ``max_epochs`` must be at least this.
    early_stopping : int
        Stop after this many validations without improvement.
    valid_windows : int
        Fixed validation windows per validation trajectory.
    seed : int
        Seed of the initial weights and the window draws.
    split_seed : int
        Seed of the train/valid/test split by trajectory (and of the validation windows); kept separate from
        ``seed`` so that every training seed and every model is tested on the same trajectories.
    split : tuple of float
        Train, validation and test fractions of the trajectories (sum 1).
    device : {"auto", "cpu", "cuda"}
        ``auto`` takes CUDA when available.
    dtype : {"float32", "float64"}
        Precision of data and model during training.
    """

    window: int = 11
    rollout_steps: int = 3
    batch_size: int = 32
    batches_per_epoch: int | None = None
    lr: float = 1e-3
    lr_factor: float = 0.5
    lr_patience: int = 300
    min_lr: float = 0.0
    max_epochs: int = 10_000
    valid_every: int = 100
    early_stopping: int = 5
    valid_windows: int = 1
    seed: int = 42
    split_seed: int = 42
    split: tuple[float, float, float] = (0.7, 0.2, 0.1)
    device: str = "auto"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("window", "rollout_steps", "batch_size", "max_epochs", "valid_every",
                     "early_stopping", "valid_windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.batches_per_epoch is not None and (
            isinstance(self.batches_per_epoch, bool) or not isinstance(self.batches_per_epoch, (int, np.integer))
            or self.batches_per_epoch < 1
        ):
            raise ValueError(f"batches_per_epoch must be a positive integer or None, got {self.batches_per_epoch!r}.")
        for name in ("seed", "split_seed", "lr_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
        if self.window < 2:
            raise ValueError(f"window must hold at least 2 frames, got {self.window}.")
        if self.rollout_steps >= self.window:
            raise ValueError(
                f"rollout_steps ({self.rollout_steps}) must be smaller than window ({self.window})."
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}.")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"lr_factor must lie in (0, 1), got {self.lr_factor!r}.")
        if not (math.isfinite(self.min_lr) and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"min_lr must lie in [0, lr], got {self.min_lr!r}.")
        if self.max_epochs < self.valid_every:
            raise ValueError(
                f"max_epochs ({self.max_epochs}) must be at least valid_every ({self.valid_every}) "
                "so that a validation chooses the saved weights."
            )
        split = tuple(float(f) for f in self.split)
        if len(split) != 3 or any(not (0 <= f <= 1) for f in split) or abs(sum(split) - 1) > 1e-9:
            raise ValueError(f"split must be three fractions in [0, 1] summing to 1, got {self.split!r}.")
        if split[0] <= 0 or split[1] <= 0:
            raise ValueError(f"split needs positive train and validation fractions, got {self.split!r}.")
        object.__setattr__(self, "split", split)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}.")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}.")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (e.g. the workflow config), rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown training setting '{unknown[0]}'; allowed: {', '.join(sorted(known))}."
            )
        values = dict(values)
        if "split" in values:
            values["split"] = tuple(values["split"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["split"] = list(self.split)
        return out

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.dtype == "float32" else torch.float64


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did. ``resumed_from`` is the epoch of the checkpoint it continued from, if any."""

    out_dir: Path
    epochs: int
    best_epoch: int
    best_valid_loss: float
    stop_reason: str
    device: str
    split: dict[str, list[int]]
    history: list[dict[str, float]] = field(repr=False)
    resumed_from: int | None = None


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------
def split_trajectories(
    n: int, *, fractions: Sequence[float] = (0.7, 0.2, 0.1), seed: int = 42
) -> dict[str, list[int]]:
    """Split trajectory indices ``0..n-1`` into train, validation and test sets, fixed by ``seed``.

    The sizes are ``round(n f_train)``, ``round(n (f_train + f_valid)) - round(n f_train)`` and the rest
    (1000 trajectories: 700/200/100). Each part is returned sorted.

    Raises
    ------
    ValueError
        If the train or the validation part would be empty.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}.")
    cut1 = int(round(n * fractions[0]))
    cut2 = int(round(n * (fractions[0] + fractions[1])))
    if cut1 < 1 or cut2 - cut1 < 1:
        raise ValueError(
            f"n = {n} trajectories are too few for the split {fractions}: train and validation "
            "each need at least one trajectory."
        )
    order = np.random.default_rng(seed).permutation(n)
    parts = {"train": order[:cut1], "valid": order[cut1:cut2], "test": order[cut2:]}
    return {name: sorted(int(i) for i in idx) for name, idx in parts.items()}


def grid_from_data(data: xr.Dataset) -> dict[str, Any]:
    """The model's grid from a fields data set: ``shape``, periodic ``length`` and saved ``dt``.

    ``shape``/``length`` follow the trailing dims of ``u`` (1-D ``(x,)``, 2-D ``(y, x)``); ``length`` is
    ``n * spacing`` of each uniform coordinate, ``dt`` the uniform spacing of ``time`` (to 10 digits).
    """
    if "u" not in data:
        raise ValueError("the data set has no variable 'u'.")
    dims = data["u"].dims
    if dims not in (("sample", "time", "x"), ("sample", "time", "y", "x")):
        raise ValueError(f"'u' has dims {dims}; expected (sample, time, x) or (sample, time, y, x).")
    shape, length = [], []
    for dim in dims[2:]:
        coord = np.asarray(data[dim].values, dtype=np.float64)
        spacing = np.diff(coord)
        if coord.size < 2 or not np.allclose(spacing, spacing[0], rtol=1e-6, atol=0):
            raise ValueError(f"coordinate '{dim}' must be uniformly spaced for a periodic grid.")
        step = (coord[-1] - coord[0]) / (coord.size - 1)
        shape.append(int(coord.size))
        length.append(float(step * coord.size))
    time = np.asarray(data["time"].values, dtype=np.float64)
    steps = np.diff(time)
    if time.size < 2 or not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        raise ValueError("coordinate 'time' must be uniformly spaced (the saved step is the model's dt).")
    # 10 significant digits drop the float noise of a saved time axis (1e-3 rather than 9.99999999999966e-4;
    # the chains accumulate lab time over ~1e5 substeps, so their noise reaches ~1e-12 relative)
    dt = float(f"{(time[-1] - time[0]) / (time.size - 1):.10g}")
    return {"shape": shape, "length": length, "dt": dt}


def _data_fingerprint(data: xr.Dataset) -> str:
    h = hashlib.blake2b(digest_size=16)
    u = np.ascontiguousarray(data["u"].values, dtype=np.float64)
    h.update(repr(u.shape).encode())
    for dim in data["u"].dims[1:]:
        h.update(np.ascontiguousarray(data[dim].values, dtype=np.float64).tobytes())
    # Hashing all values costs ~0.2 s per GB; for very large sets the first and last frames suffice to
    # tell data sets apart.
    h.update(u.tobytes() if u.nbytes <= 2**30 else np.concatenate([u[:, 0], u[:, -1]]).tobytes())
    return h.hexdigest()


def _source_fingerprint(model: nn.Module) -> str:
    """Hash of the code that shapes a run: this module and the model's (its whole subpackage when the model
    lives in a mesodyn subpackage), so that a checkpoint made by other code is never resumed."""
    root = Path(__file__).resolve().parent
    files = {Path(__file__).resolve()}
    module_file = getattr(sys.modules.get(type(model).__module__), "__file__", None)
    if module_file is not None:
        module_file = Path(module_file).resolve()
        if module_file.parent != root and root in module_file.parents:
            files.update(module_file.parent.rglob("*.py"))
        else:
            files.add(module_file)
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(files):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def train_settings(fit_config: Mapping[str, Any], *, dataset: str, seed: int) -> dict[str, Any]:
    """The :class:`TrainConfig` settings of one workflow run: ``fit.train``, then the data set's overrides in
    ``fit.datasets``, then ``seed``. Raises ``ValueError`` (naming the key) if they do not make a valid config."""
    settings = {**fit_config.get("train", {}), **fit_config.get("datasets", {}).get(dataset, {}), "seed": int(seed)}
    TrainConfig.from_dict(settings)  # fail while building the DAG, not in the middle of a job
    return settings


# ----------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------
Builder = Callable[[dict[str, Any]], nn.Module]


def _default_builder(config: dict[str, Any]) -> nn.Module:
    from mesodyn.onsager import build_model  # imported late: training does not depend on one model family

    return build_model(config)


def _cast_module(model: nn.Module, *, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Move to ``device`` and cast real floating tensors to ``dtype`` (complex ones to the matching
    complex type); ``Module.to(dtype)`` would discard the imaginary part of complex buffers."""
    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128

    def convert(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            return t.to(device=device, dtype=dtype)
        if t.is_complex():
            return t.to(device=device, dtype=complex_dtype)
        return t.to(device=device)

    return model._apply(convert)


def _model_config(model_config: Mapping[str, Any], grid: Mapping[str, Any]) -> dict[str, Any]:
    """The model config with the data's grid filled in; a conflicting grid given by hand is an error."""
    config = copy.deepcopy(dict(model_config))
    for key in ("shape", "length", "dt"):
        if key in config:
            given = np.atleast_1d(np.asarray(config[key], dtype=np.float64))
            wanted = np.atleast_1d(np.asarray(grid[key], dtype=np.float64))
            if given.shape != wanted.shape or not np.allclose(given, wanted, rtol=1e-9, atol=0):
                raise ValueError(
                    f"model config '{key}' = {config[key]!r} contradicts the data, which give {grid[key]!r}."
                )
        config[key] = copy.deepcopy(grid[key])
    return config


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA device is available; use 'auto' or 'cpu'.")
    return torch.device(device)


# ----------------------------------------------------------------------------------------------------------
# loss
# ----------------------------------------------------------------------------------------------------------
def rollout_loss(model: nn.Module, windows: torch.Tensor, *, rollout_steps: int) -> torch.Tensor:
    """K-step autoregressive loss of a batch of windows ``(batch, L, *grid)``; see the module docstring.

    Returns the mean over the K steps of the mean squared error of each step.
    """
    length = windows.shape[1]
    if not 1 <= rollout_steps < length:
        raise ValueError(f"rollout_steps must lie in [1, {length - 1}] for windows of {length} frames.")
    batch, grid = windows.shape[0], windows.shape[2:]
    n_start = length - rollout_steps
    state = windows[:, :n_start].reshape(batch * n_start, *grid)
    total = windows.new_zeros(())
    for k in range(1, rollout_steps + 1):
        # Detached: each step is trained on its own previous output, never back through it.
        state = model.step(state.detach())
        target = windows[:, k : k + n_start].reshape(batch * n_start, *grid)
        total = total + torch.mean((state - target) ** 2)
    return total / rollout_steps


# ----------------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------------
def _atomic_write(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _history_bytes(history: list[dict[str, float]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in history:
        writer.writerow([int(row["epoch"])] + [repr(float(row[c])) for c in HISTORY_COLUMNS[1:]])
    return buf.getvalue().encode()


def _cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def _write_outputs(out_dir: Path, ckpt: Mapping[str, Any]) -> None:
    """Everything but ``last.pt``, derived from a checkpoint so that a resumed run writes the same bytes."""
    _atomic_write(out_dir / "weights.pt", _torch_bytes(ckpt["best_state"]))
    _atomic_write(out_dir / "model.json", _json_bytes(ckpt["model_config"]))
    _atomic_write(out_dir / "history.csv", _history_bytes(ckpt["history"]))
    _atomic_write(out_dir / "split.json", _json_bytes(ckpt["split"]))
    summary = {
        "best_epoch": ckpt["best_epoch"],
        "best_valid_loss": ckpt["best_loss"],
        "epochs": ckpt["epoch"],
        "stop_reason": ckpt["stop_reason"],
        "train": ckpt["train"],
        "data_fingerprint": ckpt["fingerprint"]["data"],
        "n_parameters": ckpt["n_parameters"],
    }
    _atomic_write(out_dir / "summary.json", _json_bytes(summary))


def _result(out_dir: Path, ckpt: Mapping[str, Any], device: torch.device, resumed_from: int | None) -> FitResult:
    return FitResult(
        out_dir=out_dir,
        epochs=int(ckpt["epoch"]),
        best_epoch=int(ckpt["best_epoch"]),
        best_valid_loss=float(ckpt["best_loss"]),
        stop_reason=str(ckpt["stop_reason"]),
        device=str(device),
        split={k: list(v) for k, v in ckpt["split"].items() if k in ("train", "valid", "test")},
        history=[dict(row) for row in ckpt["history"]],
        resumed_from=resumed_from,
    )


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file is not worth failing the run for
        warnings.warn(f"ignoring unreadable checkpoint {path}: {exc}", RuntimeWarning, stacklevel=3)
        return None


# ----------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------
def _gather(u: torch.Tensor, traj: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    frames = starts[:, None] + torch.arange(length)[None, :]
    return u[traj[:, None], frames]


def _all_finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t is not None)


def fit(
    data: xr.Dataset,
    *,
    model_config: Mapping[str, Any],
    train: TrainConfig,
    out_dir: str | os.PathLike,
    progress: bool = True,
    builder: Builder | None = None,
) -> FitResult:
    """Train a one-step model on the trajectories of ``data`` and write it to ``out_dir``.

    Parameters
    ----------
    data : xarray.Dataset
        A fields data set (``u`` with dims ``(sample, time, x)`` or ``(sample, time, y, x)``).
    model_config : mapping
        The model's config; ``shape``, ``length`` and ``dt`` are filled in from the data's coordinates.
    train : TrainConfig
        Training settings.
    out_dir : path
        Receives ``weights.pt`` (best weights, a plain state dict), ``last.pt`` (full checkpoint for resume),
        ``model.json`` (config to rebuild the model), ``history.csv`` (one row per epoch; ``valid_loss`` is
        NaN between validations), ``split.json`` and ``summary.json``; every file is written atomically.
    progress : bool
        Show a progress bar.
    builder : callable, optional
        ``config -> nn.Module`` with a ``step(u)`` method and a ``config`` attribute; default
        :func:`mesodyn.onsager.build_model`.

    Returns
    -------
    FitResult

    Raises
    ------
    TrainingDivergedError
        If the loss becomes non-finite before the first validation. Later, a non-finite loss or gradient
        stops training with a warning; the best weights and the last finite checkpoint are kept.
    """
    builder = builder or _default_builder
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(train.device)
    dtype = train.torch_dtype

    grid = grid_from_data(data)
    config = _model_config(model_config, grid)
    u_np = np.asarray(data["u"].values)
    n_samples, n_time = u_np.shape[:2]
    if n_time < train.window:
        raise ValueError(f"window ({train.window}) is longer than the {n_time} saved frames.")
    split = split_trajectories(n_samples, fractions=train.split, seed=train.split_seed)
    split_record = {**split, "seed": train.split_seed, "fractions": list(train.split), "n_samples": n_samples}

    fingerprint_train = {k: v for k, v in train.to_dict().items() if k not in ("max_epochs", "device")}
    fingerprint = {
        "format": _CHECKPOINT_FORMAT,
        "model": json.dumps(config, sort_keys=True),
        "train": json.dumps(fingerprint_train, sort_keys=True),
        "data": _data_fingerprint(data),
    }

    # Initial weights depend on the seed only (not on what else ran in this process).
    torch.manual_seed(train.seed)
    model = builder(config)
    _cast_module(model, device=device, dtype=dtype)
    config = dict(getattr(model, "config", config))
    fingerprint["source"] = _source_fingerprint(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=train.lr_factor, patience=train.lr_patience, min_lr=train.min_lr
    )
    generator = torch.Generator().manual_seed(train.seed)

    state: dict[str, Any] = {
        "epoch": 0, "best_loss": math.inf, "best_epoch": 0, "best_state": None, "bad_validations": 0,
        "history": [], "stop_reason": "",
    }
    resumed_from = None
    last_path = out_dir / "last.pt"
    ckpt = _load_checkpoint(last_path) if last_path.exists() else None
    if ckpt is not None and ckpt.get("fingerprint") != fingerprint:
        warnings.warn(f"{last_path} was made with another config, data or code; training from scratch.",
                      RuntimeWarning, stacklevel=2)
        ckpt = None
    if ckpt is not None and ckpt["epoch"] > train.max_epochs:
        ckpt = None  # trained past the new budget: a run cannot go back, so start again
    if ckpt is not None and (ckpt["stop_reason"] or ckpt["epoch"] == train.max_epochs):
        if ckpt["stop_reason"] != "max_epochs" or ckpt["epoch"] == train.max_epochs:
            _write_outputs(out_dir, ckpt)  # finished: nothing to train, the files are rewritten identically
            return _result(out_dir, ckpt, device, resumed_from=int(ckpt["epoch"]))
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        generator.set_state(ckpt["rng"]["data"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        for key in ("epoch", "best_loss", "best_epoch", "best_state", "bad_validations", "history"):
            state[key] = ckpt[key]
        state["stop_reason"] = ""
        resumed_from = int(ckpt["epoch"])

    u = torch.as_tensor(u_np, dtype=dtype)  # kept on the CPU; batches travel to the device
    train_idx = torch.as_tensor(split["train"])
    valid_idx = torch.as_tensor(split["valid"]).repeat_interleave(train.valid_windows)
    valid_gen = torch.Generator().manual_seed(train.split_seed)
    valid_starts = torch.randint(0, n_time - train.window + 1, (valid_idx.numel(),), generator=valid_gen)
    n_train = train_idx.numel()
    per_batch = min(train.batch_size, n_train)
    n_batches = max(1, n_train // train.batch_size)
    if train.batches_per_epoch is not None:
        n_batches = min(n_batches, train.batches_per_epoch)
    n_parameters = int(sum(p.numel() for p in model.parameters()))
    logger.info(
        "fit %s (%d parameters) on %s/%s: %d/%d/%d train/valid/test trajectories, %d steps per epoch, %s",
        config.get("name", type(model).__name__), n_parameters, device, train.dtype, n_train,
        len(split["valid"]), len(split["test"]), n_batches,
        f"resuming after epoch {resumed_from}" if resumed_from is not None else "from scratch",
    )

    def checkpoint(stop_reason: str) -> dict[str, Any]:
        return {
            "format": _CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "model_config": config,
            "train": train.to_dict(),
            "split": split_record,
            "n_parameters": n_parameters,
            "model": _cpu_state(model.state_dict()),
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "scheduler": scheduler.state_dict(),
            "rng": {
                "data": generator.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
            "epoch": state["epoch"],
            "best_loss": state["best_loss"],
            "best_epoch": state["best_epoch"],
            "best_state": state["best_state"],
            "bad_validations": state["bad_validations"],
            "history": state["history"],
            "stop_reason": stop_reason,
        }

    def save(ckpt: dict[str, Any]) -> None:
        ckpt["optimizer"] = _to_cpu(ckpt["optimizer"])
        _atomic_write(last_path, _torch_bytes(ckpt))
        _write_outputs(out_dir, ckpt)

    def validate() -> float:
        model.eval()
        total, count = 0.0, 0
        for start in range(0, valid_idx.numel(), train.batch_size):
            stop = start + train.batch_size
            windows = _gather(u, valid_idx[start:stop], valid_starts[start:stop], train.window).to(device)
            # Gradients stay enabled: a model may take dV/du by autograd inside its step.
            loss = rollout_loss(model, windows, rollout_steps=train.rollout_steps).detach()
            total += float(loss) * windows.shape[0]
            count += windows.shape[0]
        model.train()
        return total / count

    def diverged(epoch: int, what: str) -> FitResult:
        if state["best_state"] is None or not last_path.exists():
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch} ({what}) before any validation; no usable weights "
                "(lower lr, or check the model's stability at the data's dt)."
            )
        last = _load_checkpoint(last_path)
        message = (
            f"non-finite {what} at epoch {epoch}; training stopped, keeping the best weights "
            f"(epoch {last['best_epoch']}) and the last finite checkpoint (epoch {last['epoch']})"
        )
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        last["stop_reason"] = message
        _atomic_write(last_path, _torch_bytes(last))
        _write_outputs(out_dir, last)
        return _result(out_dir, last, device, resumed_from)

    from tqdm.auto import tqdm

    bar = tqdm(total=train.max_epochs, initial=state["epoch"], disable=not progress, unit="epoch",
               desc=f"fit {config.get('name', type(model).__name__)}", mininterval=1.0, dynamic_ncols=True)
    model.train()
    stop_reason = ""
    try:
        for epoch in range(state["epoch"] + 1, train.max_epochs + 1):
            order = torch.randperm(n_train, generator=generator)
            starts = torch.randint(0, n_time - train.window + 1, (n_batches * per_batch,), generator=generator)
            lr = optimizer.param_groups[0]["lr"]
            epoch_loss = 0.0
            for b in range(n_batches):
                pick = slice(b * per_batch, (b + 1) * per_batch)
                windows = _gather(u, train_idx[order[pick]], starts[pick], train.window).to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = rollout_loss(model, windows, rollout_steps=train.rollout_steps)
                if not torch.isfinite(loss):
                    return diverged(epoch, "training loss")
                loss.backward()
                if not _all_finite(p.grad for p in model.parameters()):
                    return diverged(epoch, "gradient")
                optimizer.step()
                epoch_loss += float(loss.detach())
            epoch_loss /= n_batches
            scheduler.step(epoch_loss)
            row = {"epoch": epoch, "train_loss": epoch_loss, "valid_loss": math.nan, "lr": lr}
            state["epoch"] = epoch
            validation = epoch % train.valid_every == 0
            if validation:
                valid_loss = validate()
                if not math.isfinite(valid_loss):
                    return diverged(epoch, "validation loss")
                row["valid_loss"] = valid_loss
                if valid_loss < state["best_loss"]:
                    state.update(best_loss=valid_loss, best_epoch=epoch, bad_validations=0,
                                 best_state=_cpu_state(model.state_dict()))
                else:
                    state["bad_validations"] += 1
            state["history"].append(row)
            if state["bad_validations"] >= train.early_stopping:
                stop_reason = "early_stopping"
            elif epoch == train.max_epochs:
                stop_reason = "max_epochs"
            if validation or stop_reason:
                save(checkpoint(stop_reason))
            bar.update(1)
            if progress and (validation or epoch % 10 == 0):
                bar.set_postfix(loss=f"{epoch_loss:.3e}", best=f"{state['best_loss']:.3e}", lr=f"{lr:.1e}")
            if stop_reason:
                break
    finally:
        bar.close()
    logger.info("stopped after epoch %d (%s); best validation loss %.6e at epoch %d",
                state["epoch"], stop_reason, state["best_loss"], state["best_epoch"])
    return _result(out_dir, checkpoint(stop_reason), device, resumed_from)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def load_model(
    path: str | os.PathLike, *, builder: Builder | None = None, device: str = "cpu",
    weights: str = "weights.pt",
) -> nn.Module:
    """Rebuild a trained model from ``model.json`` and its weights (loaded with ``weights_only=True``).

    The model takes the precision of the saved weights; it is returned in eval mode.
    """
    path = Path(path)
    builder = builder or _default_builder
    config = json.loads((path / "model.json").read_text())
    state = torch.load(path / weights, map_location="cpu", weights_only=True)
    floats = [v.dtype for v in state.values() if v.is_floating_point()]
    dtype = floats[0] if floats else torch.get_default_dtype()
    model = builder(config)
    _cast_module(model, device=resolve_device(device), dtype=dtype)
    model.load_state_dict(state)
    return model.eval()
