"""Training of one-step models (any registered model, :mod:`mesodyn.models`) on mesoscopic fields, on CPU or GPU, with resume after interruption.

The recipe is the paper's (arXiv 2605.16211, training section, and the authors' public code): random windows of ``window`` consecutive frames, a
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

Layout
------
:mod:`.settings` (:class:`TrainConfig`), :mod:`.data` (split and windows), :mod:`.loss` (the K-step loss),
:mod:`.checkpoint` (run state and files), :mod:`.loop` (:func:`fit`).
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562), so that checking a workflow config (which needs only the torch-free
# settings) does not import PyTorch.
_WHERE = {
    "TrainConfig": "settings", "train_settings": "settings", "resolve_device": "settings",
    "split_trajectories": "data", "rollout_loss": "loss", "OUTPUT_FILES": "checkpoint", "HISTORY_COLUMNS": "checkpoint",
    "FitResult": "loop", "TrainingDivergedError": "loop", "fit": "loop", "adam": "loop",
}

__all__ = [*_WHERE, "grid_from_data", "load_model"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"mesodyn.training.{_WHERE[name]}"), name)
    if name == "grid_from_data":
        from mesodyn.fields import grid_from_data

        return grid_from_data
    if name == "load_model":
        from mesodyn.models import load_model

        return load_model
    raise AttributeError(f"module 'mesodyn.training' has no attribute {name!r}")
