rule simulate_chain:
    output:
        fields="results/data/{dataset}.nc",
        micro="results/micro/{dataset}.nc",
    log:
        "logs/data/{dataset}.log",
    wildcard_constraints:
        dataset="fput|fene",
    conda:
        "../../envs/simulate.yaml"
    threads: workflow.cores
    params:
        config=lambda wildcards: {
            "seed": config["seed"],
            "progress": config["progress"],
            "coarse": config["coarse"],
            "micro": config["micro"],
            "data": {wildcards.dataset: config["data"][wildcards.dataset]},
        },
    script:
        "../scripts/simulate_chain.py"
