"""Snakemake adapter: what several fits of one run (or group of runs) learned on each data set, and whether it is
identified (mesodyn.diagnostics.identifiability_file), one file after the other in one process."""

import time

from mesodyn.diagnostics import identifiability_file
from mesodyn.pipeline import set_threads, workflow_job

with workflow_job(snakemake):
    set_threads(snakemake.threads)
    for entry in snakemake.params.plan:
        start = time.perf_counter()
        identifiability_file(entry["run_dirs"], data_path=entry["data"], out_path=entry["path"], name=entry["run"])
        print(f"{entry['path']}: {time.perf_counter() - start:.1f} s", flush=True)
