# Memory and time limits of the heavy jobs, computed from the size of the fields array the config asks for, so that
# every executor (local, SLURM) can place them; the coefficients are from measured runs (docs/cluster.md).

import math

from mesodyn.pipeline import job_priority


def fields_mb(dataset):
    """In-memory size (MB) of the fields file of ``dataset`` under the current config: float64 samples x frames x
    grid points, plus the chain-site field of the chains. On disk the same, uncompressed (variables above 64 MiB,
    every paper data set's fields; mesodyn.fields.write_netcdf).
    A data set of the user's own: the float64 size of its ``u``, whose shape the registry read from the file.
    """
    params = config.get("data", {}).get(dataset)
    if params is None:
        return 0.0
    if dataset in USER_DATASETS:
        return math.prod(USER_DATASETS[dataset].shape) * 8 / 1e6
    if is_chain(dataset):
        frames = (
            round(params["t_final"] / (params["dt_slow"] * params["save_every"])) + 1
        )
        points = config["coarse"]["n_grid"] + params["n_sites"]
    else:
        frames = round(params["t_final"] / (params["dt"] * params["save_every"])) + 1
        points = params["n_grid"] ** ndim(dataset)
    return params["n_samples"] * frames * points * 8 / 1e6


def data_mem_mb(wildcards, attempt):
    """Peak memory of one data job: about 0.5 GB of Python, Numba and FFT plans plus the fields array once for the
    PDEs, and three times for the chains, which also hold the site trajectories and coarse-grain them (measured on
    the default config: 0.65 GB for kdv and allen_cahn, 1.1 GB for fput, 1.6 GB for fene; 0.66 GB for 16
    trajectories of allen_cahn_2d, about 13 GB for the paper's 1000), with a margin; doubled on a retry.
    """
    factor = 3 if is_chain(wildcards.dataset) else 1.5
    return int(1024 + factor * fields_mb(wildcards.dataset)) * attempt


def data_runtime(wildcards, attempt):
    """Wall-time limit (minutes) of one data job, also used for one evaluation: 10 minutes plus one per 100 MB of
    fields (measured on 2 threads: 15-37 s for the default 1-D data sets of 200-380 MB, 6.5 min for the default
    allen_cahn_2d of 2.6 GB, about 45 min for the paper's 13.2 GB; an evaluation took 30-80 s on the default
    data), doubled on a retry."""
    return (10 + math.ceil(fields_mb(wildcards.dataset) / 100)) * attempt


def fit_mem_mb(wildcards, attempt):
    """Peak memory of one fit job: the whole fields file is loaded, and a model's activations come on top (measured
    on the default data: 0.79-0.96 GB for the 1-D models, 1.9-2.2 GB for FNO, 4.4-4.8 GB in 2-D with 2.6 GB of
    fields); doubled on a retry."""
    return int(3072 + 2 * fields_mb(wildcards.dataset)) * attempt


def evaluate_mem_mb(wildcards, attempt):
    """Peak memory of one evaluation (measured: 0.42-0.52 GB in 1-D, 0.56-0.64 GB in 2-D on the default data; it
    reads the evaluation trajectories only); doubled on a retry."""
    return int(1024 + 0.5 * fields_mb(wildcards.dataset)) * attempt


def dataset_priority(wildcards):
    """Snakemake priority of a job on one data set (mesodyn.pipeline.job_priority: the 2-D data set's first)."""
    return job_priority(wildcards.dataset)


def data_priority(wildcards):
    """Snakemake priority of a data job: before every other job (mesodyn.pipeline.job_priority)."""
    return job_priority(wildcards.dataset, data=True)


def fit_priority(wildcards):
    """Snakemake priority of a fit: by its data set and its work (mesodyn.pipeline.job_priority; train_settings
    is fit.smk's import)."""
    return job_priority(
        wildcards.dataset,
        config["fit"]["models"].get(wildcards.model),
        train_settings(
            config["fit"],
            dataset=wildcards.dataset,
            seed=int(wildcards.seed),
            run=wildcards.model,
        ),
    )
