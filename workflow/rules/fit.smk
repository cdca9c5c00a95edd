# Training: one job per (dataset, model, seed); mesodyn.training.fit does the work (docs/training.md).
# The run folder also keeps last.pt (not declared): a killed or interrupted job resumes from it when rerun
# with the same config, data and code. Targets (rule all):
#   expand("results/models/{dataset}/{model}/seed{seed}/weights.pt", dataset=config["datasets"],
#          model=config["fit"]["models"], seed=config["fit"]["seeds"])


from mesodyn.training import train_settings


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
    wildcard_constraints:
        dataset="[A-Za-z0-9_]+",
        model="[A-Za-z0-9_.-]+",
        seed="[0-9]+",
    conda:
        "../../envs/fit.yaml"
    threads: config["fit"]["threads"]
    resources:
        gpu=1,
    params:
        model=lambda wildcards: config["fit"]["models"][wildcards.model],
        train=lambda wildcards: train_settings(
            config["fit"], dataset=wildcards.dataset, seed=int(wildcards.seed)
        ),
    script:
        "../scripts/fit.py"
