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
