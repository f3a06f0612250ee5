rule infer_cnv:
    input:
        unpack(cnv_expression_inputs),
    output:
        cells="results/clones/patient~{patient}/cnv_cells.h5ad",
        segments="results/clones/patient~{patient}/cnv_segments.tsv",
        heatmap=report(
            "results/clones/patient~{patient}/cnv_heatmap.png",
            caption="../report/cnv_heatmap.rst",
            category="5. Clones",
            subcategory="{patient}",
            labels={"patient": "{patient}", "figure": "copy-number heatmap"},
        ),
    params:
        cnv=config["clones"]["cnv"],
        reference=normal_cells(),
        cnv_off_reason=CNV_OFF_REASON or "",
        seed=config["seed"],
    log:
        "logs/infer_cnv/patient~{patient}.log",
    benchmark:
        "benchmarks/infer_cnv/patient~{patient}.tsv"
    threads: 1
    resources:
        # 1M-cell cohort: PSS 3.3-3.7 GB per patient of about 29,000 cells (whose share of the
        # merged file is 355 MB) when copy number and the clone call were one job; at 100k,
        # apart, 2.6 GB here and 1.5 GB in define_clones (not yet measured apart at 1M)
        mem_mb=patient_mem_mb(factor=14, floor_mb=3000),
        runtime=60,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/infer_cnv.py"


rule define_clones:
    input:
        unpack(clone_inputs),
        merged="results/merged/adata.h5ad",
        cells="results/annotate/cells.h5ad",
        cnv="results/clones/patient~{patient}/cnv_cells.h5ad",
        normal_reference=normal_reference_input(),
    output:
        cells="results/clones/patient~{patient}/cells.tsv.gz",
        report=report(
            "results/clones/patient~{patient}/sources.tsv",
            caption="../report/clone_sources.rst",
            category="5. Clones",
            subcategory="{patient}",
            labels={"patient": "{patient}", "table": "clone sources"},
        ),
        unmatched="results/clones/patient~{patient}/unmatched_rows.tsv",
    params:
        sources=clone_sources,
        clones=clone_calling_settings(),
        reference=normal_cells(),
        target_sum=config["preprocess"]["target_sum"],
        seed=config["seed"],
    log:
        "logs/define_clones/patient~{patient}.log",
    benchmark:
        "benchmarks/define_clones/patient~{patient}.tsv"
    threads: 1
    resources:
        # the patient's expression and a PCA with the healthy-marrow reference (the copy-number
        # run, the larger part of the 3.3-3.7 GB measured for both together, is infer_cnv's)
        mem_mb=patient_mem_mb(factor=14, floor_mb=3000),
        runtime=60,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/define_clones.py"


rule clone_dynamics:
    input:
        "results/final/adata.h5ad",
    output:
        frequencies=report(
            "results/tables/clones/frequencies.tsv",
            caption="../report/clone_dynamics.rst",
            category="5. Clones",
            subcategory="Cohort",
            labels={"table": "clone frequencies"},
        ),
        comparisons=report(
            "results/tables/clones/comparisons.tsv",
            caption="../report/clone_dynamics.rst",
            category="5. Clones",
            subcategory="Cohort",
            labels={"table": "clone changes between timepoints"},
        ),
        classes=report(
            "results/tables/clones/classes.tsv",
            caption="../report/clone_dynamics.rst",
            category="5. Clones",
            subcategory="Cohort",
            labels={"table": "clone classes"},
        ),
        cohort="results/tables/clones/cohort_model.tsv",
        cohort_patients="results/tables/clones/cohort_per_patient.tsv",
        overview=report(
            "results/plots/clones/cohort_overview.png",
            caption="../report/clone_overview.rst",
            category="5. Clones",
            subcategory="Cohort",
            labels={"figure": "cohort overview"},
        ),
    params:
        dynamics=config["clones"]["dynamics"],
    log:
        "logs/clone_dynamics/clone_dynamics.log",
    benchmark:
        "benchmarks/clone_dynamics/clone_dynamics.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(factor=0.2, floor_mb=2000),
        runtime=30,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/clone_dynamics.py"


rule plot_clone_dynamics:
    input:
        frequencies="results/tables/clones/frequencies.tsv",
        classes="results/tables/clones/classes.tsv",
    output:
        report(
            "results/plots/clones/patient~{patient}/dynamics.png",
            caption="../report/clone_patient.rst",
            category="5. Clones",
            subcategory="{patient}",
            labels={"patient": "{patient}", "figure": "clone dynamics"},
        ),
    log:
        "logs/plot_clone_dynamics/patient~{patient}.log",
    benchmark:
        "benchmarks/plot_clone_dynamics/patient~{patient}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/plot_clone_dynamics.py"


rule resistance_signatures:
    input:
        adata="results/final/adata.h5ad",
        classes="results/tables/clones/classes.tsv",
        signatures=list(config["clones"]["resistance"]["signatures"].values()),
    output:
        de=report(
            "results/tables/clones/resistance_de.tsv",
            caption="../report/resistance.rst",
            category="5. Clones",
            subcategory="Resistant vs sensitive",
            labels={"table": "resistant vs sensitive DE"},
        ),
        de_summary="results/tables/clones/resistance_de_summary.tsv",
        scores=report(
            "results/tables/clones/signature_scores.tsv",
            caption="../report/resistance.rst",
            category="5. Clones",
            subcategory="Resistant vs sensitive",
            labels={"table": "signature scores per clone"},
        ),
        comparison=report(
            "results/tables/clones/signature_comparison.tsv",
            caption="../report/resistance.rst",
            category="5. Clones",
            subcategory="Resistant vs sensitive",
            labels={"table": "signature differences"},
        ),
        plot=report(
            "results/plots/clones/signatures.png",
            caption="../report/resistance.rst",
            category="5. Clones",
            subcategory="Resistant vs sensitive",
            labels={"figure": "signature scores"},
        ),
    params:
        resistance=config["clones"]["resistance"],
        seed=config["seed"],
    log:
        "logs/resistance_signatures/resistance_signatures.log",
    benchmark:
        "benchmarks/resistance_signatures/resistance_signatures.tsv"
    threads: 1
    resources:
        # pseudobulks are summed block by block: memory follows pseudobulks, not cells
        mem_mb=mem_mb(factor=0.15, floor_mb=2000),
        runtime=60,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/resistance_signatures.py"
