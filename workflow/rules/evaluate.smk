# Evaluation: autoregressive rollouts of every fitted model from frame 0 over the whole horizon, on our held-out
# test split and on the paper's 10 trajectories (mesodyn.evaluation, docs/evaluation.md); then the paper's table.


include: "resources.smk"


rule evaluate:
    input:
        data="results/data/{dataset}.nc",
        weights="results/models/{dataset}/{model}/seed{seed}/weights.pt",
        model="results/models/{dataset}/{model}/seed{seed}/model.json",
        split="results/models/{dataset}/{model}/seed{seed}/split.json",
    output:
        "results/metrics/{dataset}/{model}/seed{seed}.nc",
    log:
        "logs/evaluate/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}/{model}/seed{seed}.tsv"
    wildcard_constraints:
        dataset="[A-Za-z0-9_]+",
        model="[A-Za-z0-9_.-]+",
        seed="[0-9]+",
    priority: dataset_priority
    conda:
        "../envs/fit.yaml"
    threads: 1
    resources:
        mem_mb=evaluate_mem_mb,
        runtime=data_runtime,
    params:
        batch_size=lambda wildcards: 8 if ndim(wildcards.dataset) == 2 else 32,
    script:
        "../scripts/evaluate.py"


# seconds of work: on a cluster it runs where Snakemake runs rather than waiting in the queue as a job of its own
localrules:
    table,


rule table:
    input:
        metric_targets(),
    output:
        multiext("results/tables/rel_rmse_first5", ".csv", ".md", ".tex"),
    log:
        "logs/tables/rel_rmse_first5.log",
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/table.py"
