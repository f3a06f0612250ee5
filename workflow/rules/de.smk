rule timepoint_de:
    input:
        "results/final/adata.h5ad",
    output:
        results=report(
            "results/tables/de/timepoint_de.tsv",
            caption="../report/timepoint_de.rst",
            category="4. Differential expression",
            labels={"table": "timepoint DE (all cell types)"},
        ),
        summary=report(
            "results/tables/de/timepoint_de_summary.tsv",
            caption="../report/timepoint_de.rst",
            category="4. Differential expression",
            labels={"table": "timepoint DE summary"},
        ),
        volcano=report(
            "results/plots/de_volcano.png",
            caption="../report/timepoint_de.rst",
            category="4. Differential expression",
            labels={"figure": "volcano plots"},
        ),
    params:
        de=config["de"],
        seed=config["seed"],
    log:
        "logs/timepoint_de/timepoint_de.log",
    benchmark:
        "benchmarks/timepoint_de/timepoint_de.tsv"
    threads: 2
    resources:
        # pseudobulks are summed block by block: memory follows pseudobulks, not cells
        mem_mb=mem_mb(factor=0.15, floor_mb=3000),
        runtime=60,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/timepoint_de.py"
