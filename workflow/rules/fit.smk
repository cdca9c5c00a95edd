# Training: one job per (dataset, run, seed) of mesodyn.config.fit_runs; mesodyn.training.fit does the work for
# every registered model (docs/training.md, docs/models.md); a model without trainable parameters (classical) is
# written without training. The run folder also keeps last.pt (not declared): a killed or interrupted job resumes
# from it when rerun with the same config, data and code.


from mesodyn.config import run_model_config
from mesodyn.training import train_settings


include: "resources.smk"


rule fit:
    input:
        data="results/data/{dataset}.nc",
    output:
        weights="results/models/{dataset}/{model}/seed{seed}/weights.pt",
        model="results/models/{dataset}/{model}/seed{seed}/model.json",
        history="results/models/{dataset}/{model}/seed{seed}/history.csv",
        split="results/models/{dataset}/{model}/seed{seed}/split.json",
    log:
        "logs/fit/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/fit/{dataset}/{model}/seed{seed}.tsv"
    wildcard_constraints:
        dataset="[A-Za-z0-9_]+",
        model="[A-Za-z0-9_.-]+",
        seed="[0-9]+",
    # the longest fits first (mesodyn.pipeline.job_priority), so that no long chain is left to run alone at the end
    priority: fit_priority
    conda:
        "../envs/fit.yaml"
    threads: config["fit"]["threads"]
    resources:
        # one GPU through the SLURM plugin (--gpus=1); a local run is not limited unless --resources gpu=N is given
        gpu=1,
        mem_mb=fit_mem_mb,
        runtime=lambda wildcards, attempt: config["fit"]["runtime"] * attempt,
    params:
        model=lambda wildcards: run_model_config(
            config["fit"]["models"][wildcards.model]
        ),
        train=lambda wildcards: train_settings(
            config["fit"],
            dataset=wildcards.dataset,
            seed=int(wildcards.seed),
            run=wildcards.model,
        ),
    script:
        "../scripts/fit.py"
