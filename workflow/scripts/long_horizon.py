"""Snakemake adapter: the long-horizon rollouts of one fitted model (mesodyn.diagnostics.diagnostic_file)."""

import time
from pathlib import Path

from mesodyn.diagnostics import diagnostic_file
from mesodyn.pipeline import set_threads, workflow_job

with workflow_job(snakemake):
    set_threads(snakemake.threads)
    start = time.perf_counter()
    diagnostic_file(
        "long_horizon",
        run_dir=Path(snakemake.input.weights).parent,
        data_path=snakemake.input.data,
        out_path=snakemake.output[0],
        n_steps=snakemake.params.n_steps,
        dtype="float32",
    )
    print(f"{snakemake.output[0]}: {time.perf_counter() - start:.1f} s", flush=True)
