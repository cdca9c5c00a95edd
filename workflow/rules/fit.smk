# Training: one job per (dataset, model, seed); mesodyn.training.fit does the work (docs/training.md).
# The run folder also keeps last.pt (not declared): a killed or interrupted job resumes from it when rerun
# with the same config, data and code.


def fit_train(wildcards):
    """Training settings of one run: fit.train, the data set's overrides and the seed of the wildcard."""
    overrides = config["fit"]["datasets"].get(wildcards.dataset, {})
    return {**config["fit"]["train"], **overrides, "seed": int(wildcards.seed)}


def fit_targets():
    """The weights of every configured (dataset, model, seed)."""
    return expand(
        "results/models/{dataset}/{model}/seed{seed}/weights.pt",
        dataset=config["datasets"],
        model=config["fit"]["models"],
        seed=config["fit"]["seeds"],
    )


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
        train=fit_train,
    script:
        "../scripts/fit.py"
