rule simulate_chain:
    output:
        fields="results/data/{dataset}.nc",
        micro="results/micro/{dataset}.nc",
    params:
        config=lambda wildcards: {
            "seed": config["seed"],
            "progress": config["progress"],
            "coarse": config["coarse"],
            "micro": config["micro"],
            "data": {wildcards.dataset: config["data"][wildcards.dataset]},
        },
    wildcard_constraints:
        dataset="fput|fene",
    threads: workflow.cores
    log:
        "logs/data/{dataset}.log",
    script:
        "../scripts/simulate_chain.py"
