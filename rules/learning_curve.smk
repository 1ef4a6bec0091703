# Experiment: the learning curve (docs/learning-curve.md; target `learning_curve`, not part of `all`).
# One job per (world, subject, replicate seed, training-set size) draws that subject's epochs directly at the
# preprocessed rate from the study's stimuli and ground truth, and fits and scores every decoder; one summary
# job writes the tables and the figure. One job per study renders fresh exemplars of the test concepts for the
# fair ceiling. Adding a size reruns only the new size's jobs and the summary.
# With `learning_curve.modalities` [meg, fmri], the simulated 7T fMRI study's decoders get the same curve
# (megdecode.learning_curve.fmri): one voxel-code job per subject, one job per (subject, seed, size).
# With eeg, the simulated subjects measured by scalp electrodes in a rapid serial presentation
# (megdecode.learning_curve.eeg; device in `eeg.simulation`, epochs of the THINGS-EEG2 recipe): one job per
# (world, subject, seed, size).
LC_CFG = config["learning_curve"]
# keys that choose which jobs exist, and the summary's statistics, are not passed to the jobs
LC_NOT_JOB_KEYS = (
    "modalities",
    "worlds",
    "subjects",
    "seeds",
    "train_sizes",
    "n_bootstrap",
    "ci_level",
    "runtime",
    "ceiling_renders",
)
LC_JOB_CFG = {k: v for k, v in LC_CFG.items() if k not in LC_NOT_JOB_KEYS}
LC_EPOCHS = {
    k: config["preprocessing"][k] for k in ("tmin", "tmax", "sfreq", "l_freq", "h_freq")
}
# the learning_curve keys an fMRI job reads (megdecode.learning_curve.fmri.FmriCurveParams checks them)
LC_FMRI_JOB_KEYS = (
    "n_val",
    "min_train_samples",
    "test_repeats",
    "backbones",
    "threads",
)
LC_FMRI_SIM = config["fmri"]["simulation"]
# the THINGS-EEG2 recipe's window, rate and channels that the simulated EEG epochs follow
LC_EEG_RECIPE = {
    k: config["things_eeg2"]["preprocessing"][k]
    for k in ("tmin", "tmax", "resample_hz", "channel_regex")
}
LC_FMRI_DECODERS = {k: config["fmri"][k] for k in ("ridge", "mlp", "mlp_training")}
LC_SCORES = {
    "meg": expand(
        L.learning_curve_scores,
        world=LC_CFG["worlds"],
        subject=LC_CFG["subjects"],
        seed=LC_CFG["seeds"],
        n_train=LC_CFG["train_sizes"],
    ),
    "fmri": expand(
        L.learning_curve_fmri_scores,
        subject=LC_CFG["subjects"],
        seed=LC_CFG["seeds"],
        n_train=LC_CFG["train_sizes"],
    ),
    "eeg": expand(
        L.learning_curve_eeg_scores,
        world=LC_CFG["worlds"],
        subject=LC_CFG["subjects"],
        seed=LC_CFG["seeds"],
        n_train=LC_CFG["train_sizes"],
    ),
}
LC_SUMMARY_FILES = {
    "summary": L.learning_curve_summary("summary.tsv"),
    "paired": L.learning_curve_summary("paired.tsv"),
    "slopes": L.learning_curve_summary("slopes.tsv"),
    "report": L.learning_curve_summary("learning_curve.md"),
    "png": L.learning_curve_summary("learning_curve.png"),
    "pdf": L.learning_curve_summary("learning_curve.pdf"),
}


wildcard_constraints:
    world=r"linear|nonlinear",
    n_train=r"\d+",


rule learning_curve_concept_renders:
    input:
        stimuli=STIMULI_TABLE,
    output:
        renders=L.learning_curve_concept_renders,
    log:
        L.log("learning_curve_concept_renders"),
    benchmark:
        L.benchmark("learning_curve_concept_renders")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    params:
        n_renders=LC_CFG["ceiling_renders"],
        image_size=config["simulation"]["stimuli"]["image_size"],
        seed=config["seed"],
    script:
        "../workflow/scripts/learning_curve_concept_renders.py"


rule learning_curve_job:
    input:
        stimuli=STIMULI_TABLE,
        ground_truth=L.ground_truth,
        latents=lambda wc: latent_files(PLAN.learning_curve_backbones(), "latents"),
        concept_renders=L.learning_curve_concept_renders,
    output:
        scores=L.learning_curve_scores,
        trials=L.learning_curve_trials,
    log:
        L.log("learning_curve_job", "{world}/sub-{subject}_seed-{seed}_n-{n_train}"),
    benchmark:
        L.benchmark(
            "learning_curve_job", "{world}/sub-{subject}_seed-{seed}_n-{n_train}"
        )
    conda:
        CONDA_ENV
    threads: LC_CFG["threads"]
    resources:
        mem_mb=lambda wc: 2000 + 2 * int(wc.n_train),
        runtime=LC_CFG["runtime"],
    params:
        learning_curve=LC_JOB_CFG,
        simulation=config["simulation"],
        epochs=LC_EPOCHS,
        brain_module=config["brain_module"],
        training=TRAIN_PARAMS,
        alphas=RIDGE_CFG["alphas"],
        seed=config["seed"],
    script:
        "../workflow/scripts/learning_curve_job.py"


rule learning_curve_fmri_voxels:
    input:
        stimuli=STIMULI_TABLE,
        images=STIMULI_IMAGES,
    output:
        code=L.learning_curve_fmri_voxels,
        truth=L.learning_curve_fmri_truth,
    log:
        L.log("learning_curve_fmri_voxels", "sub-{subject}"),
    benchmark:
        L.benchmark("learning_curve_fmri_voxels", "sub-{subject}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        simulation=LC_FMRI_SIM,
        seed=config["seed"],
    script:
        "../workflow/scripts/learning_curve_fmri_voxels.py"


rule learning_curve_fmri_job:
    input:
        stimuli=STIMULI_TABLE,
        code=L.learning_curve_fmri_voxels,
        latents=lambda wc: latent_files(PLAN.learning_curve_backbones(), "latents"),
    output:
        scores=L.learning_curve_fmri_scores,
        trials=L.learning_curve_fmri_trials,
    log:
        L.log("learning_curve_fmri_job", "sub-{subject}_seed-{seed}_n-{n_train}"),
    benchmark:
        L.benchmark("learning_curve_fmri_job", "sub-{subject}_seed-{seed}_n-{n_train}")
    conda:
        CONDA_ENV
    threads: LC_CFG["threads"]
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        learning_curve={k: LC_CFG[k] for k in LC_FMRI_JOB_KEYS},
        fmri={"simulation": LC_FMRI_SIM, **LC_FMRI_DECODERS},
        seed=config["seed"],
    script:
        "../workflow/scripts/learning_curve_job.py"


rule learning_curve_eeg_job:
    input:
        stimuli=STIMULI_TABLE,
        ground_truth=L.ground_truth,
        latents=lambda wc: latent_files(PLAN.learning_curve_backbones(), "latents"),
        concept_renders=L.learning_curve_concept_renders,
    output:
        scores=L.learning_curve_eeg_scores,
        trials=L.learning_curve_eeg_trials,
    log:
        L.log("learning_curve_eeg_job", "{world}/sub-{subject}_seed-{seed}_n-{n_train}"),
    benchmark:
        L.benchmark(
            "learning_curve_eeg_job", "{world}/sub-{subject}_seed-{seed}_n-{n_train}"
        )
    conda:
        CONDA_ENV
    threads: LC_CFG["threads"]
    resources:
        mem_mb=lambda wc: 2000 + int(wc.n_train),
        runtime=LC_CFG["runtime"],
    params:
        learning_curve=LC_JOB_CFG,
        simulation=config["simulation"],
        eeg=config["eeg"]["simulation"],
        recipe=LC_EEG_RECIPE,
        brain_module=config["brain_module"],
        training=TRAIN_PARAMS,
        alphas=RIDGE_CFG["alphas"],
        seed=config["seed"],
    script:
        "../workflow/scripts/learning_curve_eeg_job.py"


rule learning_curve_summary:
    input:
        [f for modality in LC_CFG["modalities"] for f in LC_SCORES[modality]],
    output:
        **LC_SUMMARY_FILES,
    log:
        L.log("learning_curve_summary"),
    benchmark:
        L.benchmark("learning_curve_summary")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        statistics={k: LC_CFG[k] for k in ("n_bootstrap", "ci_level")},
        seed=config["seed"],
    script:
        "../workflow/scripts/learning_curve_summary.py"
