# Stage: report (see docs/ARCHITECTURE.md).
# Tables (long TSV, Table 1 in Markdown + LaTeX), figures (PNG + PDF) and the captions of `snakemake --report`.
# presentation settings only: the example backbone/subject choose inputs (PLAN), not how figures look
REPORT_CFG = {k: v for k, v in config["report"].items() if not k.startswith("example_")}
REPORT_BACKBONE, REPORT_SUBJECT = PLAN.example_backbone, PLAN.example_subject
REPORT_FIGURES = [
    "retrieval",
    "subjects",
    "timecourses",
    "top5_examples",
    "attention_maps",
]


report: "../workflow/report/workflow.rst"


rule report_tables:
    input:
        retrieval=EVAL_RETRIEVAL_FILES,
        timeresolved=EVAL_TIMERESOLVED_FILES,
        meta=latent_files(PLAN.evaluated_backbones, "meta"),
    output:
        long=report(
            f"{TABLES}/results_long.tsv",
            caption="../workflow/report/results_long.rst",
            category="Tables",
        ),
        md=report(
            f"{TABLES}/table1.md",
            caption="../workflow/report/table1.rst",
            category="Tables",
        ),
        tex=f"{TABLES}/table1.tex",
    log:
        f"{LOGS}/report_tables/report_tables.log",
    benchmark:
        f"{BENCHMARKS}/report_tables/report_tables.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cfg=REPORT_CFG,
    script:
        "../workflow/scripts/report_tables.py"


rule report_figures:
    input:
        long=f"{TABLES}/results_long.tsv",
        truth=[L.ground_truth] if SIMULATED else [],
    output:
        retrieval=[
            report(
                f"{FIGURES}/retrieval.png",
                caption="../workflow/report/retrieval.rst",
                category="Retrieval",
            ),
            f"{FIGURES}/retrieval.pdf",
        ],
        subjects=[
            report(
                f"{FIGURES}/subjects.png",
                caption="../workflow/report/subjects.rst",
                category="Retrieval",
            ),
            f"{FIGURES}/subjects.pdf",
        ],
        timecourses=[
            report(
                f"{FIGURES}/timecourses.png",
                caption="../workflow/report/timecourses.rst",
                category="Time-resolved decoding",
            ),
            f"{FIGURES}/timecourses.pdf",
        ],
    log:
        f"{LOGS}/report_figures/report_figures.log",
    benchmark:
        f"{BENCHMARKS}/report_figures/report_figures.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cfg=REPORT_CFG,
        image_offset=config["bids"]["stimulus_duration_s"],
    script:
        "../workflow/scripts/report_figures.py"


rule report_examples:
    input:
        **PLAN.example_inputs(L),
        latents=latent_files([REPORT_BACKBONE], "latents"),
        index=latent_files([REPORT_BACKBONE], "index"),
        stimuli=STIMULI_TABLE,
        channels=expand(SUBJECT_FILES["channels"], subject=REPORT_SUBJECT),
    output:
        top5=[
            report(
                f"{FIGURES}/top5_examples.png",
                caption="../workflow/report/top5_examples.rst",
                category="Retrieval",
            ),
            f"{FIGURES}/top5_examples.pdf",
        ],
        attention=[
            report(
                f"{FIGURES}/attention_maps.png",
                caption="../workflow/report/attention_maps.rst",
                category="Brain module",
            ),
            f"{FIGURES}/attention_maps.pdf",
        ],
    log:
        f"{LOGS}/report_examples/report_examples.log",
    benchmark:
        f"{BENCHMARKS}/report_examples/report_examples.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        cfg=REPORT_CFG,
        images_root=STIMULI_IMAGES,
    script:
        "../workflow/scripts/report_examples.py"


ALL_TARGETS += [
    f"{TABLES}/{n}" for n in ("results_long.tsv", "table1.md", "table1.tex")
] + [f"{FIGURES}/{n}.{ext}" for n in REPORT_FIGURES for ext in ("png", "pdf")]
