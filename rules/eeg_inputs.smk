# Input functions and constants of rules/eeg.smk (kept apart: a rule file holds rules only).
from pathlib import Path

from megdecode.datasets.things_eeg2 import (
    PARTITIONS as EEG_PARTITIONS,
    ThingsEeg2Layout,
    check_study_subjects,
    settings_from_config as eeg_settings_from_config,
)
from megdecode.simulate.things_eeg2 import dataset_section as eeg_dataset_section

# the section the readers see: the config's, or the simulated copy's root and counts
EEG_CFG = eeg_dataset_section(config)
EEG_SETTINGS = eeg_settings_from_config(EEG_CFG)
EEG_SESSION_FILES = L.things_eeg2_bids_session_files()
EEG_PREPROCESSED = {p: L.things_eeg2_preprocessed(p) for p in EEG_PARTITIONS}
# study.source 'things_eeg2': the recipe's partitions feed the decoders (rules/eeg.smk, docs/eeg.md)
EEG_SOURCE = STUDY["source"] == "things_eeg2"
EEG_SIMULATED = EEG_CFG["simulation"]["enabled"]
if EEG_SOURCE:
    try:
        check_study_subjects(SUBJECTS, EEG_SETTINGS)
    except ValueError as err:
        raise WorkflowError(str(err)) from None


def eeg_layout():
    """The dataset's files (only when a job needs them: things_eeg2.root must be set)."""
    return ThingsEeg2Layout.from_settings(EEG_SETTINGS)


def eeg_session_inputs(wildcards):
    layout = eeg_layout()
    return {
        **{
            p: str(layout.raw(wildcards.subject, wildcards.session, p))
            for p in EEG_PARTITIONS
        },
        "metadata": str(layout.image_metadata),
    }


def eeg_subject_inputs(wildcards):
    layout = eeg_layout()
    return [str(p) for p in layout.subject_inputs(wildcards.subject)] + [
        str(layout.image_metadata)
    ]


def eeg_simulated_raw():
    """The raw files one simulated subject's job writes (``{subject}`` kept)."""
    layout = ThingsEeg2Layout(Path(EEG_CFG["root"]), EEG_SETTINGS)
    return [str(p) for p in layout.subject_inputs("{subject}")]


def eeg_simulated_images():
    """The simulated image set: its metadata file and image folders."""
    image_set = ThingsEeg2Layout(
        Path(EEG_CFG["root"]), EEG_SETTINGS
    ).image_metadata.parent
    return {
        "metadata": str(image_set / "image_metadata.npy"),
        "training": directory(str(image_set / "training_images")),
        "test": directory(str(image_set / "test_images")),
    }


def eeg_study_targets(targets):
    """The default target of a THINGS-EEG2 study: the EEG stage's targets and the other stages' without the
    MEG-only ones (the BIDS check, per-run QC, derivatives, online replay)."""
    return EEG_TARGETS + [t for t in targets if not L.meg_only(t)]


EEG_TARGETS = [
    L.things_eeg2_bids_description,
    *expand(
        list(EEG_PREPROCESSED.values()),
        subject=EEG_SETTINGS.subjects,
    ),
]
