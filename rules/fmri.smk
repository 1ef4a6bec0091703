# Stage: fMRI (docs/fmri.md). The fMRI companion of the MEG study (config `fmri`, off by default): the
# simulated 7T study on the MEG study's stimuli, its decoders (ridge, MLP) per (backbone, subject) on the
# shared latents, their retrieval, and the MEG-vs-fMRI comparison. Files under {R}/fmri/
# (megdecode.artifacts.fmri); which jobs exist: PLAN.fmri (megdecode.plan.FmriPlan).
from megdecode.plan import feature_level


include: "fmri_inputs.smk"


rule simulate_fmri:
    input:
        table=STIMULI_TABLE,
        images=STIMULI_IMAGES,
    output:
        **FMRI_SUBJECT_FILES,
        truth=L.fmri_ground_truth,
    log:
        L.log("simulate_fmri", "sub-{subject}"),
    benchmark:
        L.benchmark("simulate_fmri", "sub-{subject}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=FMRI_CFG["simulation"],
        seed=config["seed"],
    script:
        "../workflow/scripts/simulate_fmri.py"


rule fmri_train_ridge:
    input:
        unpack(fmri_decoder_inputs),
    output:
        predictions=L.fmri_predictions("ridge"),
        model=L.fmri_model_file("ridge", "coefficients"),
    log:
        L.log("fmri_train_ridge", "{backbone}/sub-{subject}"),
    benchmark:
        L.benchmark("fmri_train_ridge", "{backbone}/sub-{subject}")
    conda:
        CONDA_ENV
    threads: FMRI_CFG["threads"]
    resources:
        mem_mb=lambda wc, input: job_mem_mb(input.size_mb, base=1000),
        runtime=30,
    params:
        ridge=FMRI_CFG["ridge"],
    script:
        "../workflow/scripts/fmri_train_ridge.py"


rule fmri_train_mlp:
    input:
        unpack(fmri_decoder_inputs),
    output:
        predictions=L.fmri_predictions("mlp"),
        history=L.fmri_model_file("mlp", "history"),
    log:
        L.log("fmri_train_mlp", "{backbone}/sub-{subject}"),
    benchmark:
        L.benchmark("fmri_train_mlp", "{backbone}/sub-{subject}")
    conda:
        CONDA_ENV
    threads: FMRI_CFG["threads"]
    resources:
        mem_mb=lambda wc, input: job_mem_mb(input.size_mb),
        runtime=60,
    params:
        mlp=FMRI_CFG["mlp"],
        training=FMRI_CFG["mlp_training"],
        master_seed=config["seed"],
    script:
        "../workflow/scripts/fmri_train_mlp.py"


# The simulated study's fMRI ceiling: its fair ideal observer on the subject's own test trials.
rule fmri_ceiling:
    input:
        **FMRI_SUBJECT_FILES,
        table=STIMULI_TABLE,
        images=STIMULI_IMAGES,
    output:
        table=L.fmri_ceiling_table,
    log:
        L.log("fmri_ceiling", "sub-{subject}"),
    benchmark:
        L.benchmark("fmri_ceiling", "sub-{subject}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        simulation=FMRI_CFG["simulation"],
        evaluation={
            k: EVAL_CFG[k]
            for k in ("topk", "n_bootstrap", "ci_level", "chance_shuffles")
        },
        seed=config["seed"],
    script:
        "../workflow/scripts/fmri_ceiling.py"


if PLAN.fmri is not None:
    FMRI_EVAL_JOBS = PLAN.fmri.retrieval_jobs(L)
    FMRI_RETRIEVAL_FILES = [
        f for job in FMRI_EVAL_JOBS for f in job["outputs"].values()
    ]
    FMRI_COMPARISON = {
        "tsv": L.table("meg_vs_fmri.tsv"),
        "md": L.table("meg_vs_fmri.md"),
        "png": L.figure("meg_vs_fmri.png"),
        "pdf": L.figure("meg_vs_fmri.pdf"),
    }
    FMRI_CEILING_FILES = (
        expand(L.fmri_ceiling_table, subject=PLAN.fmri.subjects)
        if PLAN.fmri.ceiling
        else []
    )
    FMRI_RECON_GENERATORS = FMRI_GENERATORS if PLAN.fmri.reconstruct else []
    if FMRI_RECON_GENERATORS:
        FMRI_COMPARISON.update(
            recon_tsv=L.table("meg_vs_fmri_reconstruction.tsv"),
            recon_md=L.table("meg_vs_fmri_reconstruction.md"),
            recon_png=L.figure("meg_vs_fmri_reconstruction.png"),
            recon_pdf=L.figure("meg_vs_fmri_reconstruction.pdf"),
        )

    # One job for every (decoder, backbone, subject), as evaluate_retrieval for MEG.
    rule fmri_evaluate_retrieval:
        input:
            latents=latent_files(PLAN.fmri.backbones, "latents", "index", "meta"),
            predictions=[
                f
                for job in FMRI_EVAL_JOBS
                for files in job["prediction_files"].values()
                for f in files
            ],
        output:
            FMRI_RETRIEVAL_FILES,
        log:
            L.log("fmri_evaluate_retrieval"),
        benchmark:
            L.benchmark("fmri_evaluate_retrieval")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=15,
        params:
            jobs=FMRI_EVAL_JOBS,
            cfg={
                k: EVAL_CFG[k]
                for k in ("topk", "n_bootstrap", "ci_level", "chance_shuffles")
            },
            seed=config["seed"],
        script:
            "../workflow/scripts/evaluate_retrieval.py"

    # The MEG reconstruction stage's code on the fMRI decoder's predictions (same generators and metrics).
    rule fmri_reconstruct:
        input:
            unpack(fmri_recon_inputs),
        output:
            npz=FMRI_RECON_NPZ,
            images=directory(FMRI_RECON_IMAGES),
        log:
            L.log("fmri_reconstruct", "{generator}/sub-{subject}"),
        benchmark:
            L.benchmark("fmri_reconstruct", "{generator}/sub-{subject}")
        wildcard_constraints:
            generator="decoder|retrieval",
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            cfg=fmri_recon_params,
            seed=config["seed"],
            images_root=STIMULI_IMAGES,
        script:
            "../workflow/scripts/reconstruct_images.py"

    rule fmri_reconstruction_metrics:
        input:
            unpack(fmri_recon_metrics_inputs),
        output:
            metrics=expand(
                FMRI_RECON_METRICS, subject=PLAN.fmri.subjects, allow_missing=True
            ),
            figures=expand(
                FMRI_RECON_EXAMPLES, subject=PLAN.fmri.subjects, allow_missing=True
            ),
        log:
            L.log("fmri_reconstruction_metrics", "{generator}"),
        benchmark:
            L.benchmark("fmri_reconstruction_metrics", "{generator}")
        wildcard_constraints:
            generator="decoder|retrieval",
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=20,
        params:
            cfg=config["reconstruction"]["metrics"],
            backbones={b: config["backbones"][b] for b in PLAN.recon_feature_backbones},
            images_root=STIMULI_IMAGES,
            subjects=PLAN.fmri.subjects,
        script:
            "../workflow/scripts/reconstruct_metrics.py"

    rule fmri_compare:
        input:
            meg=[
                f
                for job in EVAL_JOBS
                if job["model"] != "chance"
                for f in job["outputs"].values()
            ],
            fmri=FMRI_RETRIEVAL_FILES,
            ceiling=FMRI_CEILING_FILES,
            meg_recon=expand(
                RECON_METRICS, generator=FMRI_RECON_GENERATORS, subject=SUBJECTS
            ),
            fmri_recon=expand(
                FMRI_RECON_METRICS,
                generator=FMRI_RECON_GENERATORS,
                subject=PLAN.fmri.subjects,
            ),
        output:
            **FMRI_COMPARISON,
        log:
            L.log("fmri_compare"),
        benchmark:
            L.benchmark("fmri_compare")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            comparison=FMRI_CFG["comparison"],
            dpi=config["report"]["dpi"],
            feature_levels={
                b: feature_level(spec) for b, spec in PLAN.backbones.items()
            },
            decoders={
                "MEG": config["reconstruction"]["model"],
                "fMRI": FMRI_CFG["reconstruction_model"],
            },
            bootstrap={k: EVAL_CFG[k] for k in ("n_bootstrap", "ci_level")},
            seed=config["seed"],
        script:
            "../workflow/scripts/fmri_compare.py"

    ALL_TARGETS += expand(L.fmri_ground_truth, subject=PLAN.fmri.subjects)
    ALL_TARGETS += (
        FMRI_RETRIEVAL_FILES + FMRI_CEILING_FILES + list(FMRI_COMPARISON.values())
    )
