# Stage: THINGS-EEG2 (docs/eeg.md; target `things_eeg2`, not part of `all`). Reads the dataset as published
# under things_eeg2.root (megdecode.datasets.things_eeg2): one job per (subject, session) converts both
# partitions to BIDS-EEG, one dataset job adds the tree's shared files, and one job per subject runs the
# published EEG recipe (epochs, 100 Hz, MVNN per session) into megdecode.artifacts.eeg files.
include: "eeg_inputs.smk"


rule things_eeg2_bids_session:
    """Both partitions of one THINGS-EEG2 session as BIDS-EEG recordings (task-train, task-test)."""
    input:
        unpack(eeg_session_inputs),
    output:
        **EEG_SESSION_FILES,
    log:
        L.log("things_eeg2_bids_session", "sub-{subject}_ses-{session}"),
    benchmark:
        L.benchmark("things_eeg2_bids_session", "sub-{subject}_ses-{session}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        # one raw file of 64 channels x ~70 min at 1000 Hz (float64, ~2 GB) and its BrainVision copy
        mem_mb=8000,
        runtime=60,
    params:
        cfg=EEG_CFG,
    script:
        "../workflow/scripts/things_eeg2_bids_session.py"


rule things_eeg2_bids_dataset:
    """The BIDS-EEG tree's dataset description, participants, README and events sidecars."""
    input:
        expand(
            EEG_SESSION_FILES["train_raw"],
            subject=EEG_SETTINGS.subjects,
            session=EEG_SETTINGS.sessions,
        ),
        expand(
            EEG_SESSION_FILES["test_raw"],
            subject=EEG_SETTINGS.subjects,
            session=EEG_SETTINGS.sessions,
        ),
    output:
        description=L.things_eeg2_bids_description,
    log:
        L.log("things_eeg2_bids_dataset"),
    benchmark:
        L.benchmark("things_eeg2_bids_dataset")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        cfg=EEG_CFG,
    script:
        "../workflow/scripts/things_eeg2_bids_dataset.py"


rule things_eeg2_preprocess:
    """The published EEG recipe on one subject: (images, repetitions, channels, times) per partition."""
    input:
        eeg_subject_inputs,
    output:
        **EEG_PREPROCESSED,
    log:
        L.log("things_eeg2_preprocess", "sub-{subject}"),
    benchmark:
        L.benchmark("things_eeg2_preprocess", "sub-{subject}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        # one session's two raw files at a time (~3 GB float64) and the subject's epochs (~2 GB)
        mem_mb=16000,
        runtime=240,
    params:
        cfg=EEG_CFG,
    script:
        "../workflow/scripts/things_eeg2_preprocess.py"


# --- study.source 'things_eeg2': the stimuli table and each subject's decoder input (the preprocessed folder)
if EEG_SOURCE:

    # the dataset brings its own stimuli and decoder inputs (the MEG stages would make them otherwise)
    ruleorder: things_eeg2_stimuli > stimuli_table > simulate_stimuli
    ruleorder: things_eeg2_subject > preprocess_subject

    rule things_eeg2_stimuli:
        """The stimuli table of THINGS-EEG2's training and test images (image_metadata.npy)."""
        input:
            metadata=lambda wildcards: str(eeg_layout().image_metadata),
        output:
            STIMULI_TABLE,
        log:
            L.log("things_eeg2_stimuli"),
        benchmark:
            L.benchmark("things_eeg2_stimuli")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            cfg=EEG_CFG,
            # the simulated copy's images carry the simulated study's attributes (shape, colour, texture)
            simulation=config["simulation"] if EEG_SIMULATED else None,
            seed=config["seed"],
        script:
            "../workflow/scripts/things_eeg2_stimuli.py"

    rule things_eeg2_subject:
        """One subject's recipe partitions as the decoders' input: test images averaged (test_small) and
        single test trials (test_large), training trials, validation from training images or concepts.
        """
        input:
            training=EEG_PREPROCESSED["training"],
            test=EEG_PREPROCESSED["test"],
            metadata=lambda wildcards: str(eeg_layout().image_metadata),
        output:
            **SUBJECT_FILES,
        log:
            L.log("things_eeg2_subject", "sub-{subject}"),
        benchmark:
            L.benchmark("things_eeg2_subject", "sub-{subject}")
        wildcard_constraints:
            subject="|".join(SUBJECTS),
        conda:
            CONDA_ENV
        threads: 1
        resources:
            # the two partitions in memory and the float32 output (~0.5 GB per subject on the real data)
            mem_mb=6000,
            runtime=20,
        params:
            cfg={k: EEG_CFG[k] for k in EEG_CFG if k != "simulation"},
            scaling={
                k: config["preprocessing"][k]
                for k in (
                    "val_fraction",
                    "scaler_quantiles",
                    "scaler_max_trials",
                    "clamp",
                )
            },
            validation=config["training"]["validation"],
            seed=config["seed"],
        script:
            "../workflow/scripts/things_eeg2_subject.py"


# --- the simulated copy (things_eeg2.simulation.enabled): the published layout, from the simulated study
if EEG_SIMULATED:

    rule things_eeg2_simulate_images:
        """The simulated THINGS-EEG2's image set: image_metadata.npy, training_images/, test_images/."""
        output:
            **eeg_simulated_images(),
        log:
            L.log("things_eeg2_simulate_images"),
        benchmark:
            L.benchmark("things_eeg2_simulate_images")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            simulation=config["simulation"],
            seed=config["seed"],
        script:
            "../workflow/scripts/things_eeg2_simulate_images.py"

    rule things_eeg2_simulate_subject:
        """One simulated subject's raw files (every session, both partitions) in the published format."""
        output:
            eeg_simulated_raw(),
        log:
            L.log("things_eeg2_simulate_subject", "sub-{subject}"),
        benchmark:
            L.benchmark("things_eeg2_simulate_subject", "sub-{subject}")
        wildcard_constraints:
            subject="|".join(EEG_SETTINGS.subjects),
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=4000,
            runtime=20,
        params:
            cfg=EEG_CFG,
            simulation=config["simulation"],
            eeg=config["eeg"]["simulation"],
            seed=config["seed"],
        script:
            "../workflow/scripts/things_eeg2_simulate_subject.py"
