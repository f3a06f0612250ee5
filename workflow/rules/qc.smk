rule qc_sample:
    input:
        unpack(qc_inputs),
    output:
        kept="results/qc/{sample}/cells_kept.h5ad",
        cells="results/qc/{sample}/cells.tsv",
        ledger="results/qc/{sample}/ledger.tsv",
        droplets="results/qc/{sample}/droplets.tsv.gz",
        plot=report(
            "results/qc/{sample}/qc_metrics.png",
            caption="../report/qc_sample.rst",
            category="1. QC",
            subcategory="{sample}",
            labels={"sample": "{sample}", "figure": "QC metrics"},
        ),
    params:
        sample=sample_row,
        qc=sample_qc_settings,
        droplets=droplet_params,
        seed=config["seed"],
    log:
        "logs/qc_sample/{sample}.log",
    benchmark:
        "benchmarks/qc_sample/{sample}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(factor=30, floor_mb=2000),
        runtime=30,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/qc_sample.py"


rule qc_ledger:
    input:
        ledgers=qc_outputs("ledger.tsv"),
        cells=qc_outputs("cells.tsv"),
    output:
        ledger=report(
            "results/tables/qc_ledger.tsv",
            caption="../report/qc_ledger.rst",
            category="1. QC",
            labels={"table": "QC ledger"},
        ),
        cells="results/tables/qc_cells.tsv.gz",
        plot=report(
            "results/plots/qc_ledger.png",
            caption="../report/qc_ledger.rst",
            category="1. QC",
            labels={"figure": "QC ledger"},
        ),
    log:
        "logs/qc_ledger/qc_ledger.log",
    benchmark:
        "benchmarks/qc_ledger/qc_ledger.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(factor=5, floor_mb=1000),
        runtime=15,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/qc_ledger.py"
