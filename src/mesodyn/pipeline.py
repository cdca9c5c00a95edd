"""File-level steps shared by the command-line interface and the Snakemake scripts.

Each function reads and writes files and calls the science in the other modules; rules stay thin.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["log_to", "workflow_job", "set_threads", "simulate_chain_files", "solve_pde_files", "user_data_files",
           "fit_files", "evaluate_run_files", "table_files", "job_priority"]

logger = logging.getLogger("mesodyn")


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Send logging, stdout and stderr (progress bars included) to ``path`` for the duration of the block."""
    if path is None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.removeHandler(handler)


@contextlib.contextmanager
def workflow_job(smk: Any) -> Iterator[None]:
    """The frame of every workflow script: logging to the job's log, and the config's user data sets joined to the
    registry (:func:`mesodyn.registry.register_user_datasets`), as they were when the workflow was parsed."""
    from mesodyn.registry import register_user_datasets

    with log_to(smk.log[0]):
        register_user_datasets(smk.config)
        yield


# Training steps of more than one evaluation of the model (ETDRK2's two stages; AVF's implicit solve)
_COSTLY_STEPPERS = ("etdrk2", "avf")
# Priority of the data jobs, above any sum of the others' (two cores' worth of jobs at once)
DATA_PRIORITY = 100


def job_priority(dataset: str, run: Mapping[str, Any] | None = None, train: Mapping[str, Any] | None = None,
                 *, data: bool = False) -> int:
    """The workflow's order among jobs that are ready at the same time (Snakemake's ``priority``; higher first).

    Snakemake does not know how long a job takes; left to itself it started the 2-D data set's fits 25 minutes into
    the default run, whose evaluations and long horizons then ran alone at the end, and a data job needing both
    cores waited until two fits happened to end together. So, the longest first (the classic rule for keeping every
    core busy to the end), by levels:

    * ``data``: a data job, :data:`DATA_PRIORITY` (plus the level below): every data set first;
    * 5: any job on a 2-D data set (the longest chain: data, fits of 140-260 s, a long horizon of 240 s);
    * fits on a 1-D data set by their work, ``steps x stages`` (``train``'s ``max_epochs x batches_per_epoch``;
      2 stages for an ETDRK2 or AVF training step, times its substeps): 3 from 10 000 (the AVF row on FENE and KdV,
      160-340 s), 2 from 5 000 (SpecOnsNet on FENE and KdV, 100-195 s), else 1;
    * 0: every other job (evaluations, tables, figures: seconds to a minute).

    Measured in the default run from a fresh clone (2 cores, one VM): 46.5 min before, 41.6 min with these levels
    and the 2-D data written uncompressed, both cores then busy from the end of the data jobs to the last minute
    (docs/budget.md).
    """
    from mesodyn.registry import DATASETS, USER_DATASETS

    info = DATASETS.get(dataset) or USER_DATASETS.get(dataset)  # (a rule used on its own takes any name: 1-D)
    level = 5 if info is not None and info.ndim == 2 else 0
    if run is not None and level == 0:
        stepper = run.get("train_stepper") or run.get("stepper")
        substeps = int(run.get("train_substeps") or run.get("substeps") or 1)
        stages = (2 if stepper in _COSTLY_STEPPERS else 1) * substeps
        train = train or {}
        steps = int(train.get("max_epochs") or 0) * int(train.get("batches_per_epoch") or 1)
        work = steps * stages
        level = 3 if work >= 10_000 else 2 if work >= 5_000 else 1
    return level + (DATA_PRIORITY if data else 0)


def set_threads(threads: int | None) -> int:
    """Use ``threads`` threads in Numba and torch (capped by what Numba was started with)."""
    import numba

    n = max(1, min(int(threads or numba.config.NUMBA_NUM_THREADS), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a dependency, but the chain step does not need it
        pass
    return n


def simulate_chain_files(
    name: str,
    config: Mapping[str, Any],
    *,
    fields_path: str | os.PathLike,
    micro_path: str | os.PathLike | None = None,
    threads: int | None = None,
) -> None:
    """Simulate chain data set ``name`` per the validated workflow ``config`` and write its files."""
    from mesodyn.chains.data import make_chain_data
    from mesodyn.fields import write_fields, write_netcdf
    from mesodyn.provenance import provenance_attrs, to_netcdf_attrs

    n = set_threads(threads)
    params = config["data"][name]
    relevant = {"seed": config["seed"], "data": {name: params}, "coarse": config["coarse"], "micro": config["micro"]}
    logger.info("simulating %s with %d thread(s): %s", name, n, params)
    fields, micro = make_chain_data(
        name, params, seed=config["seed"], method=config["coarse"]["method"], n_grid=config["coarse"]["n_grid"],
        keep_micro=config["micro"]["keep"], progress=config.get("progress", True),
    )
    logger.info("accepted %d of %d trials", fields.sizes["sample"], fields.attrs["n_trials"])
    write_fields(fields, fields_path, config=relevant)
    logger.info("wrote %s", fields_path)
    if micro_path is not None:
        micro.attrs = to_netcdf_attrs({**micro.attrs, **provenance_attrs(relevant)})
        write_netcdf(micro, micro_path)
        logger.info("wrote %s (%d trajectories)", micro_path, micro.sizes["sample"])


def solve_pde_files(name: str, config: Mapping[str, Any], *, fields_path: str | os.PathLike,
                    threads: int | None = None) -> None:
    """Solve continuum data set ``name`` (kdv, allen_cahn, allen_cahn_2d) per ``config`` and write its file."""
    from mesodyn.continuum import make_dataset
    from mesodyn.fields import write_fields

    n = set_threads(threads)
    params = config["data"][name]
    relevant = {"seed": config["seed"], "data": {name: params}}
    logger.info("solving %s with %d thread(s): %s", name, n, params)
    fields = make_dataset(name, params=params, seed=config["seed"], progress=config.get("progress", True),
                          workers=n)
    logger.info("accepted %d of %d trials", fields.sizes["sample"], fields.attrs["n_trials"])
    write_fields(fields, fields_path, config=relevant)
    logger.info("wrote %s", fields_path)


def user_data_files(name: str, config: Mapping[str, Any], *, fields_path: str | os.PathLike) -> None:
    """Check a user data set's own file (``data.<name>.path``) against the user contract and write it as the
    workflow's fields file ``fields_path``, so that every later step reads it as it reads a paper data set.

    The check (:func:`mesodyn.fields.check_fields`, ``contract="user"``) covers every value, the coordinates, and the
    longest training window and every split of the runs fitted on it; a file that fails writes nothing. The copy
    holds ``u`` in float64 (the precision of the paper's files; the models cast it as they need), the file's own
    coordinates, variables and attributes, and adds ``dataset`` (the config's name), ``source_file``, a declared
    ``epsilon`` or ``kappa`` and the provenance attributes.
    """
    from mesodyn.config import fit_models
    from mesodyn.fields import check_fields, read_fields, write_netcdf
    from mesodyn.provenance import provenance_attrs, to_netcdf_attrs
    from mesodyn.training.settings import TrainConfig, train_settings

    entry = config["data"][name]
    path = entry["path"]
    fit = config.get("fit", {})
    seed = fit.get("seeds", [0])[0]
    settings = [TrainConfig.from_dict(train_settings(fit, dataset=name, seed=seed, run=run))
                for run in fit_models(config, name)]
    window = max((s.window for s in settings), default=None)
    splits = list(dict.fromkeys(tuple(s.split) for s in settings)) or [None]
    data = read_fields(path, contract="user", window=window, split=splits[0])
    for split in splits[1:]:  # the other runs' splits against the trajectories (values checked once)
        check_fields(data, contract="user", source=path, split=split, samples=[])
    data["u"] = data["u"].astype("float64")
    declared = {key: entry[key] for key in ("epsilon", "kappa") if entry.get(key) is not None}
    data.attrs = to_netcdf_attrs({**data.attrs, "dataset": name, "source_file": str(path), **declared,
                                  **provenance_attrs({"data": {name: dict(entry)}})})
    write_netcdf(data, fields_path)
    logger.info("checked %s (%s) and wrote %s", path, dict(data["u"].sizes), fields_path)


def fit_files(data_path: str | os.PathLike, *, model: Mapping[str, Any], train: Mapping[str, Any],
              out_dir: str | os.PathLike, threads: int | None = None, progress: bool = True,
              dataset: str | None = None) -> None:
    """Fit the model config ``model`` with the training settings ``train`` (a mapping of
    :class:`mesodyn.training.TrainConfig`) on the fields file ``data_path``; write the run folder ``out_dir``.

    The file is checked first (:func:`mesodyn.fields.check_fields`: the paper contract for a data set of the
    registry, else the user contract; ``dataset``, when given, against the file's own name; the window and the
    split against its frames and trajectories), so that a bad file writes nothing."""
    from mesodyn.fields import contract_of, dataset_name, read_fields
    from mesodyn.training import TrainConfig, fit

    settings = TrainConfig.from_dict(train)
    if dataset is None:
        dataset = dataset_name(data_path)
    data = read_fields(data_path, contract=contract_of(dataset), dataset=dataset, window=settings.window,
                       split=settings.split)
    n = set_threads(threads)
    logger.info("fitting %s on %s with %d thread(s)", model.get("name"), data_path, n)
    result = fit(data, model_config=model, train=settings, out_dir=out_dir, progress=progress)
    logger.info("%s: %d epochs, best validation loss %.6e at epoch %d (%s)", out_dir, result.epochs,
                result.best_valid_loss, result.best_epoch, result.stop_reason)


def evaluate_run_files(run_dir: str | os.PathLike, data_path: str | os.PathLike, out_path: str | os.PathLike, *,
                       label: str, dataset: str, batch_size: int = 32, threads: int | None = None) -> None:
    """Roll out the model of ``run_dir`` on both evaluation sets of ``data_path`` (``heldout``: our test split;
    ``paper``: the authors' 10 trajectories) and write the relative RMSE file ``out_path``."""
    from mesodyn.evaluation import evaluate_files

    n = set_threads(threads)
    # logged when done: a file that fails the data check is then its only line
    evaluate_files(run_dir, data_path, out_path, batch_size=batch_size, label=label, dataset=dataset)
    logger.info("evaluated %s on %s (%s, %s) with %d thread(s): wrote %s", run_dir, data_path, label, dataset, n,
                out_path)


def table_files(metric_files, *, out_dir: str | os.PathLike, steps: int = 5) -> None:
    """The paper's table (steps 1..``steps``, ours beside the paper's) from evaluation files, as CSV/MD/TeX."""
    from mesodyn.tables import rel_rmse_table

    table = rel_rmse_table(sorted(str(p) for p in metric_files), steps=steps, out_dir=out_dir)
    logger.info("wrote %s (%d rows)", out_dir, len(table))
