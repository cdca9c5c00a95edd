"""Training settings: :class:`TrainConfig` (the paper's recipe by default) and the workflow's per-data-set merge."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mesodyn.rollout import resolve_device  # the one device rule, shared with evaluation and diagnostics

__all__ = ["TrainConfig", "train_settings", "resolve_device"]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the paper's (arXiv 2605.16211 and the authors' public code).

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
    schedule : {"plateau", "cosine"}
        ``"plateau"`` (paper): ReduceLROnPlateau on the epoch-mean training loss. ``"cosine"`` (ours, for a fixed
        budget): linear warm-up over ``warmup_epochs`` to ``lr``, then a cosine decay to ``min_lr`` at
        ``max_epochs``; the rate then depends on ``max_epochs``, so a finished cosine run is not extended by
        raising it (it is trained again).
    lr_factor, lr_patience : float, int
        Plateau schedule: multiply the rate by ``lr_factor`` after ``lr_patience`` epochs without improvement.
    min_lr : float
        Lower bound of the rate (both schedules).
    warmup_epochs : int
        Cosine schedule: epochs of linear warm-up (0: none).
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
    train_part : tuple of int or None
        ``(i, n)``: train on the ``i``-th of ``n`` disjoint parts of the training trajectories (every ``n``-th of
        them from the ``i``-th on); validation and test stay the same. Fits on ``(0, 2)`` and ``(1, 2)`` saw disjoint
        data and are compared on the same held-out trajectories: the identifiability across halves of the data.
        ``None`` (default): all training trajectories.
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
    schedule: str = "plateau"
    warmup_epochs: int = 0
    max_epochs: int = 10_000
    valid_every: int = 100
    early_stopping: int = 5
    valid_windows: int = 1
    seed: int = 42
    split_seed: int = 42
    split: tuple[float, float, float] = (0.7, 0.2, 0.1)
    train_part: tuple[int, int] | None = None
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
        if self.schedule not in ("plateau", "cosine"):
            raise ValueError(f"schedule must be 'plateau' or 'cosine', got {self.schedule!r}.")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, (int, np.integer)) \
                or not 0 <= self.warmup_epochs < self.max_epochs:
            raise ValueError(f"warmup_epochs must be an integer in [0, max_epochs), got {self.warmup_epochs!r}.")
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
        if self.train_part is not None:
            part = tuple(self.train_part)
            if len(part) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in part) \
                    or not 0 <= part[0] < part[1]:
                raise ValueError(f"train_part must be [i, n] with integers 0 <= i < n, got {self.train_part!r}.")
            object.__setattr__(self, "train_part", (int(part[0]), int(part[1])))
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
        if self.train_part is None:
            del out["train_part"]  # the fingerprint of every fit trained before the option existed stays the same
        else:
            out["train_part"] = list(self.train_part)
        return out

    def lr_factor_at(self, epoch: int) -> float:
        """Cosine schedule: the rate of epoch ``epoch`` (counted from 0) as a fraction of ``lr``."""
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        span = max(1, self.max_epochs - self.warmup_epochs)
        progress = min(1.0, (epoch - self.warmup_epochs) / span)
        floor = self.min_lr / self.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    @property
    def torch_dtype(self):
        import torch

        return torch.float32 if self.dtype == "float32" else torch.float64


def train_settings(fit_config: Mapping[str, Any], *, dataset: str, seed: int, run: str | None = None) -> dict[str, Any]:
    """The :class:`TrainConfig` settings of one workflow run: ``fit.train``, then the data set's overrides in
    ``fit.datasets``, then the run's own ``fit.models.<run>.train``, then ``seed``. Raises ``ValueError`` (naming
    the key) if they do not make a valid config."""
    override = {k: v for k, v in fit_config.get("datasets", {}).get(dataset, {}).items() if k != "models"}
    own = fit_config.get("models", {}).get(run, {}).get("train", {}) if run is not None else {}
    settings = {**fit_config.get("train", {}), **override, **own, "seed": int(seed)}
    TrainConfig.from_dict(settings)  # fail while building the DAG, not in the middle of a job
    return settings
