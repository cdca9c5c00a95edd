"""Snakemake adapter: the diagnostics files of one fitted model (mesodyn.diagnostics.diagnostic_file), one after
the other in one process."""

import time
from pathlib import Path

from mesodyn.diagnostics import diagnostic_file
from mesodyn.pipeline import set_threads, workflow_job

with workflow_job(snakemake):
    set_threads(snakemake.threads)
    for job in snakemake.params.jobs:
        start = time.perf_counter()
        diagnostic_file(
            job["kind"],
            run_dir=Path(snakemake.input.weights).parent,
            data_path=snakemake.input.data,
            out_path=job["path"],
            n_samples=job["n_samples"],
            **job["options"],
        )
        print(f"{job['path']}: {time.perf_counter() - start:.1f} s", flush=True)
