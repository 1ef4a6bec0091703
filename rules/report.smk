# Stage: report (see docs/ARCHITECTURE.md).
# Tables (long TSV, Table 1 in Markdown + LaTeX), figures (PNG + PDF) and the captions of `snakemake --report`.
# presentation settings only: the example backbone/subject choose inputs (PLAN), not how figures look
REPORT_CFG = {k: v for k, v in config["report"].items() if not k.startswith("example_")}
REPORT_BACKBONE, REPORT_SUBJECT = PLAN.example_backbone, PLAN.example_subject
REPORT_TABLES = ["results_long.tsv", "table1.md", "table1.tex"]
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
            L.table("results_long.tsv"),
            caption="../workflow/report/results_long.rst",
            category="Tables",
        ),
        md=report(
            L.table("table1.md"),
            caption="../workflow/report/table1.rst",
            category="Tables",
        ),
        tex=L.table("table1.tex"),
    log:
        L.log("report_tables"),
    benchmark:
        L.benchmark("report_tables")
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
        long=L.table("results_long.tsv"),
        truth=[L.ground_truth] if SIMULATED else [],
    output:
        retrieval=[
            report(
                L.figure("retrieval.png"),
                caption="../workflow/report/retrieval.rst",
                category="Retrieval",
            ),
            L.figure("retrieval.pdf"),
        ],
        subjects=[
            report(
                L.figure("subjects.png"),
                caption="../workflow/report/subjects.rst",
                category="Retrieval",
            ),
            L.figure("subjects.pdf"),
        ],
        timecourses=[
            report(
                L.figure("timecourses.png"),
                caption="../workflow/report/timecourses.rst",
                category="Time-resolved decoding",
            ),
            L.figure("timecourses.pdf"),
        ],
    log:
        L.log("report_figures"),
    benchmark:
        L.benchmark("report_figures")
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
                L.figure("top5_examples.png"),
                caption="../workflow/report/top5_examples.rst",
                category="Retrieval",
            ),
            L.figure("top5_examples.pdf"),
        ],
        attention=[
            report(
                L.figure("attention_maps.png"),
                caption="../workflow/report/attention_maps.rst",
                category="Brain module",
            ),
            L.figure("attention_maps.pdf"),
        ],
    log:
        L.log("report_examples"),
    benchmark:
        L.benchmark("report_examples")
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


ALL_TARGETS += [L.table(n) for n in REPORT_TABLES] + [
    L.figure(f"{n}.{ext}") for n in REPORT_FIGURES for ext in ("png", "pdf")
]
