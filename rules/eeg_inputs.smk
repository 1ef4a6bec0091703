# Input functions and constants of rules/eeg.smk (kept apart: a rule file holds rules only).
from megdecode.datasets.things_eeg2 import (
    PARTITIONS as EEG_PARTITIONS,
    ThingsEeg2Layout,
    settings_from_config as eeg_settings_from_config,
)

EEG_CFG = config["things_eeg2"]
EEG_SETTINGS = eeg_settings_from_config(EEG_CFG)
EEG_SESSION_FILES = L.things_eeg2_bids_session_files()
EEG_PREPROCESSED = {p: L.things_eeg2_preprocessed(p) for p in EEG_PARTITIONS}


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


EEG_TARGETS = [
    L.things_eeg2_bids_description,
    *expand(
        list(EEG_PREPROCESSED.values()),
        subject=EEG_SETTINGS.subjects,
    ),
]
