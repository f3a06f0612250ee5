rule annotate_cells:
    input:
        merged="results/merged/adata.h5ad",
        cells="results/cluster/cells.h5ad",
        markers=config["annotation"]["markers"],
    output:
        cells="results/annotate/cells.h5ad",
        clusters=report(
            "results/tables/cluster_annotation.tsv",
            caption="../report/cluster_annotation.rst",
            category="3. Clusters and cell types",
            labels={"table": "cluster annotation"},
        ),
        composition=report(
            "results/tables/cell_type_composition.tsv",
            caption="../report/composition.rst",
            category="3. Clusters and cell types",
            labels={"table": "cell types per sample"},
        ),
    params:
        annotation=config["annotation"],
        seed=config["seed"],
    log:
        "logs/annotate_cells/annotate_cells.log",
    benchmark:
        "benchmarks/annotate_cells/annotate_cells.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(factor=1, floor_mb=2000),
        runtime=60,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/annotate_cells.py"


rule finalise:
    input:
        merged="results/merged/adata.h5ad",
        counts="results/merged/counts.h5ad",
        cells="results/annotate/cells.h5ad",
        ledger="results/tables/qc_ledger.tsv",
        clones=patient_outputs("cells.tsv.gz"),
    output:
        "results/final/adata.h5ad",
    params:
        config=final_object_settings(),
    log:
        "logs/finalise/finalise.log",
    benchmark:
        "benchmarks/finalise/finalise.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(factor=0.5, floor_mb=2000),
        runtime=30,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/finalise.py"


rule plot_embeddings:
    input:
        "results/final/adata.h5ad",
    output:
        umap=report(
            "results/plots/umap.png",
            caption="../report/umap.rst",
            category="2. Integration",
            labels={"figure": "UMAP by sample, timepoint, cluster and cell type"},
        ),
        metrics=report(
            "results/tables/integration_metrics.tsv",
            caption="../report/integration_metrics.rst",
            category="2. Integration",
            labels={"table": "integration metrics"},
        ),
        metrics_plot=report(
            "results/plots/integration_metrics.png",
            caption="../report/integration_metrics.rst",
            category="2. Integration",
            labels={"figure": "integration metrics"},
        ),
    params:
        batch_key=config["integration"]["batch_key"],
        seed=config["seed"],
    log:
        "logs/plot_embeddings/plot_embeddings.log",
    benchmark:
        "benchmarks/plot_embeddings/plot_embeddings.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(factor=0.5, floor_mb=2000),
        runtime=30,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/plot_embeddings.py"
