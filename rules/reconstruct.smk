# Stage: reconstruct (see docs/ARCHITECTURE.md).
# Predicted latents -> images per (generator, subject), image metrics per (generator, subject), one summary
# beside the paper's reported numbers. The decoder generator is trained per backbone on train-concept stimulus
# images only (never on MEG, never on a test image), in {R}/generators/. Input helpers: reconstruct_inputs.smk.


include: "reconstruct_inputs.smk"


rule train_decoder:
    input:
        latents=LATENT_FILES["latents"],
        index=LATENT_FILES["index"],
        table=STIMULI_TABLE,
    output:
        model=DECODER_MODEL,
        meta=DECODER_META,
        history=L.decoder_file("history"),
    log:
        L.log("train_decoder", "{backbone}"),
    benchmark:
        L.benchmark("train_decoder", "{backbone}")
    conda:
        CONDA_ENV
    threads: 1  # a tiny model: one thread is fastest
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=RECON_CFG["decoder"],
        seed=config["seed"],
        images_root=STIMULI_IMAGES,
    script:
        "../workflow/scripts/reconstruct_train_decoder.py"


rule reconstruct:
    input:
        unpack(recon_inputs),
    output:
        npz=RECON_NPZ,
        images=directory(RECON_IMAGES),
    log:
        L.log("reconstruct", "{generator}/sub-{subject}"),
    benchmark:
        L.benchmark("reconstruct", "{generator}/sub-{subject}")
    wildcard_constraints:
        generator="decoder|retrieval|versatile_diffusion",
    conda:
        CONDA_ENV
    threads: RECON_CFG["threads"]
    resources:
        mem_mb=lambda wc: 24000 if wc.generator == "versatile_diffusion" else 2000,
        runtime=lambda wc: 120 if wc.generator == "versatile_diffusion" else 10,
        gpu=lambda wc: 1 if wc.generator == "versatile_diffusion" else 0,
    params:
        cfg=recon_params,
        seed=config["seed"],
        images_root=STIMULI_IMAGES,
    script:
        "../workflow/scripts/reconstruct_images.py"


rule reconstruction_metrics:
    input:
        unpack(recon_metrics_inputs),
    output:
        metrics=expand(RECON_METRICS, subject=SUBJECTS, allow_missing=True),
        figures=report(
            expand(RECON_EXAMPLES, subject=SUBJECTS, allow_missing=True),
            caption="../workflow/report/reconstruction_examples.rst",
            category="Reconstruction",
            subcategory="{generator}",
        ),
    log:
        L.log("reconstruction_metrics", "{generator}"),
    benchmark:
        L.benchmark("reconstruction_metrics", "{generator}")
    conda:
        CONDA_ENV
    threads: RECON_CFG["threads"]
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cfg=RECON_CFG["metrics"],
        backbones={b: config["backbones"][b] for b in PLAN.recon_feature_backbones},
        images_root=STIMULI_IMAGES,
        subjects=SUBJECTS,
    script:
        "../workflow/scripts/reconstruct_metrics.py"


if PLAN.recon_attribute_readout:

    rule attribute_readout:
        input:
            table=STIMULI_TABLE,
        output:
            **ATTRIBUTE_READOUT_FILES,
        log:
            L.log("attribute_readout"),
        benchmark:
            L.benchmark("attribute_readout")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            cfg=RECON_CFG["metrics"]["attribute_readout"],
            image_px=RECON_CFG["metrics"]["image_size"],
            images_root=STIMULI_IMAGES,
            seed=config["seed"],
        script:
            "../workflow/scripts/reconstruct_attribute_readout.py"

    ALL_TARGETS.extend(ATTRIBUTE_READOUT_FILES.values())


rule reconstruction_summary:
    input:
        expand(RECON_METRICS, generator=RECON_CFG["generators"], subject=SUBJECTS),
    output:
        tsv=L.reconstruction_summary("tsv"),
        md=L.reconstruction_summary("md"),
        html=report(
            L.reconstruction_summary("html"),
            caption="../workflow/report/reconstruction_summary.rst",
            category="Reconstruction",
            labels={"table": "summary"},
        ),
    log:
        L.log("reconstruction_summary", "summary"),
    benchmark:
        L.benchmark("reconstruction_summary", "summary")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../workflow/scripts/reconstruct_summary.py"


if RECON_CFG["generators"]:
    ALL_TARGETS.extend(
        [L.reconstruction_summary(ext) for ext in ("tsv", "md", "html")]
        + expand(RECON_EXAMPLES, generator=RECON_CFG["generators"], subject=SUBJECTS)
    )
