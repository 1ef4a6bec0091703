"""A THINGS-EEG2 written in the published layout: the raw ``.npy`` dicts, ``image_metadata.npy`` and images.

The writers of the published formats (:func:`raw_content`, :func:`write_raw`, :func:`write_image_metadata`,
:func:`rsvp_codes`, :func:`rsvp_onsets`) serve the tests' twin and the simulated dataset
(``things_eeg2.simulation``), which :func:`write_image_set` and :func:`write_subject` build from the simulated
study:

- images: the simulated study's (:func:`megdecode.simulate.stimuli.build_stimuli`, config ``simulation``):
  every image of a training concept is a training image, the test image of each test concept a test image
  (THINGS-EEG2 shows no other image of a test concept); concept folders ``NNNNN_<concept>``;
- responses: each image's noiseless evoked response (early and late components, the subject's dipoles, the
  study's world) at the 63 electrodes of ``eeg.simulation`` (10-05 positions on the subject's head sphere,
  four-shell sphere model, average reference; :mod:`megdecode.simulate.eeg`), in volts;
- presentation: the published one (``eeg.simulation``: 100 ms images every 200 ms in sequences of 20; a
  pause of ``gap_s`` between sequences), images in a seeded random order, ``train_per_session`` /
  ``test_per_session`` presentations per image and session and ``targets_per_session`` targets (code
  ``target_code``, no response);
- noise: white electrode noise of ``eeg.simulation.electrode_uv_rthz`` over the raw band (sfreq / 2).
  Simplifications, stated: no background brain activity, no trial-to-trial gain or latency variability, no
  eye or muscle artefacts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.io import atomic_output
from megdecode.seeds import derive_rng

log = logging.getLogger(__name__)

STIM = "stim"
START_S = 0.5  # first onset after the file's start
TAIL_S = 1.5  # recording after the last onset


# --- the published formats -------------------------------------------------------------------------------


def raw_content(
    data: np.ndarray, ch_names: Sequence[str], sfreq: float, highpass: float = 0.01, lowpass: float = 100
) -> dict[str, Any]:
    """One raw file's dict, as ``source_to_raw.py`` saves it: EEG channels then ``stim`` (last row)."""
    names = list(ch_names)
    if names[-1] != STIM or data.shape[0] != len(names):
        raise ValueError(f"raw data needs {len(names)} rows, the last one '{STIM}'; got {data.shape}")
    return {
        "raw_eeg_data": data,
        "ch_names": names,
        "ch_types": ["eeg"] * (len(names) - 1) + ["stim"],
        "sfreq": sfreq,
        "highpass": highpass,
        "lowpass": lowpass,
    }


def write_raw(path: Path | str, content: Mapping[str, Any]) -> None:
    """``raw_eeg_{partition}.npy`` (a pickled dict, as published)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(Path(path)) as tmp:  # the temporary name keeps .npy: np.save adds nothing
        np.save(tmp, dict(content), allow_pickle=True)


def write_image_metadata(path: Path | str, metadata: Mapping[str, list[str]]) -> None:
    """``image_metadata.npy``: ``train_img_concepts``, ``train_img_files``, ``test_img_concepts``,
    ``test_img_files``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(Path(path)) as tmp:
        np.save(tmp, {k: list(v) for k, v in metadata.items()}, allow_pickle=True)


def rsvp_codes(
    n_images: int, per_session: int, n_targets: int, target_code: int, rng: np.random.Generator
) -> np.ndarray:
    """Stim codes of one partition's presentations: image numbers 1..n, ``per_session`` times each, and
    ``n_targets`` targets, in random order."""
    codes = np.concatenate(
        [np.repeat(np.arange(1, n_images + 1), per_session), np.full(n_targets, target_code)]
    )
    return rng.permutation(codes)


def rsvp_onsets(
    n: int, soa_s: float, sequence: int, gap_s: float, sfreq: float, start_s: float = START_S
) -> np.ndarray:
    """Onset samples of ``n`` presentations: ``soa_s`` apart in sequences of ``sequence``, ``gap_s`` between
    sequences."""
    k = np.arange(n)
    t = start_s + k * soa_s + (k // sequence) * gap_s
    return np.round(t * sfreq).astype(int)


def recording(
    eeg: np.ndarray, onsets: np.ndarray, codes: np.ndarray, responses: Mapping[int, np.ndarray]
) -> np.ndarray:
    """``eeg`` (channels, samples) plus each presentation's response (channels, response samples; none for a
    code missing from ``responses``) from its onset, with the stim channel appended (the code at onsets)."""
    stim = np.zeros((1, eeg.shape[1]))
    for onset, code in zip(onsets, codes, strict=True):
        stim[0, onset] = code
        if int(code) in responses:
            r = responses[int(code)]
            eeg[:, onset : onset + r.shape[1]] += r[:, : eeg.shape[1] - onset]
    return np.concatenate([eeg, stim])


# --- the simulated dataset --------------------------------------------------------------------------------


def dataset_section(config: Mapping[str, Any]) -> dict:
    """The ``things_eeg2`` section the readers see: the config's, or for the simulated dataset with its root
    and its counts (images from ``simulation.stimuli``, repetitions from ``things_eeg2.simulation``)."""
    from megdecode.artifacts.paths import things_eeg2_root

    section, simulation = config["things_eeg2"], config["simulation"]
    sim = section["simulation"]
    if not sim["enabled"]:
        return dict(section)
    st = simulation["stimuli"]
    n_sessions = len(section["sessions"])
    return {
        **section,
        "root": things_eeg2_root(config),
        "n_train_images": int(st["n_train_concepts"]) * int(st["exemplars_per_train_concept"]),
        "n_test_images": int(st["n_test_concepts"]),
        "train_repetitions": int(sim["train_per_session"]) * n_sessions,
        "test_repetitions": int(sim["test_per_session"]) * n_sessions,
    }


def _study_images(simulation: Mapping[str, Any], seed: int) -> tuple[pd.DataFrame, dict, dict]:
    """The simulated study's images as THINGS-EEG2's: a table with ``partition``, ``image_number``,
    ``concept_folder`` and ``file`` (``<concept_folder>/<image_id>.png``), the images and the truth."""
    from megdecode.simulate.params import StimulusWorldParams
    from megdecode.simulate.stimuli import build_stimuli

    table, images, truth = build_stimuli(StimulusWorldParams.from_config(simulation), seed)
    train = table[(table["role"] == "exp") & (table["concept_split"] == "train")].assign(partition="training")
    test = table[table["role"] == "test"].assign(partition="test")
    shown = pd.concat([train, test], ignore_index=True)
    concepts = list(dict.fromkeys(shown["concept"]))
    folder = {c: f"{k + 1:05d}_{c}" for k, c in enumerate(concepts)}
    shown["concept_folder"] = shown["concept"].map(folder)
    shown["file_name"] = shown["image_id"] + ".png"
    shown["image_number"] = shown.groupby("partition").cumcount() + 1
    return shown, images, truth


def write_image_set(image_set: Path | str, simulation: Mapping[str, Any], seed: int) -> pd.DataFrame:
    """``image_metadata.npy``, ``training_images/`` and ``test_images/`` of the simulated dataset."""
    from PIL import Image

    shown, images, _ = _study_images(simulation, seed)
    image_set = Path(image_set)
    folders = {"training": "training_images", "test": "test_images"}
    for partition, name in folders.items():
        part = shown[shown["partition"] == partition]
        with atomic_output(image_set / name) as tmp:
            for row in part.itertuples():
                path = tmp / row.concept_folder / row.file_name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(images[row.image_id]).save(path, format="PNG", compress_level=1)
    train, test = (shown[shown["partition"] == p] for p in folders)
    write_image_metadata(
        image_set / "image_metadata.npy",
        {
            "train_img_concepts": train["concept_folder"].tolist(),
            "train_img_files": train["file_name"].tolist(),
            "test_img_concepts": test["concept_folder"].tolist(),
            "test_img_files": test["file_name"].tolist(),
        },
    )
    log.info("simulated THINGS-EEG2 images: %d training, %d test", len(train), len(test))
    return shown


def evoked_responses(
    simulation: Mapping[str, Any],
    eeg_simulation: Mapping[str, Any],
    table: pd.DataFrame,
    truth: dict,
    seed: int,
    subject: str,
    sfreq: float,
) -> tuple[list[str], np.ndarray]:
    """The electrodes and the noiseless responses (images, electrodes, samples) in V of ``table``'s images,
    from onset until every component has ended, at ``sfreq``."""
    from megdecode.learning_curve.epochs import subject_dipoles
    from megdecode.simulate.eeg import EegSimParams, eeg_gain, electrode_positions
    from megdecode.simulate.params import SimulationParams
    from megdecode.simulate.responses import gaussian_waves, trial_amplitudes
    from megdecode.simulate.subject import subject_anatomy

    params = SimulationParams.from_config(simulation)
    p = EegSimParams.from_config(eeg_simulation)
    anatomy = subject_anatomy(params, seed, subject)
    r0, radius = np.asarray(anatomy["head"]["sphere_r0"], float), float(anatomy["head"]["head_radius"])
    gain = eeg_gain(
        electrode_positions(p.montage, p.channels, r0, radius),
        subject_dipoles(anatomy),
        r0,
        radius,
        p.average_reference,
    )
    n_e, n_l = params.early.n_dipoles, params.late.n_dipoles
    comps = (params.early, params.late)
    n = int(np.ceil((max(max(c.latencies) + 5 * c.width for c in comps)) * sfreq))
    waves = [gaussian_waves(c, 0.0, n, sfreq) for c in comps]
    out = np.empty((len(table), len(p.channels), n))
    for k, row in enumerate(table.itertuples()):
        attrs = {a: getattr(row, a) for a in ("shape", "colour", "texture")}
        a_e, a_l = trial_amplitudes(params, truth, row.image_id, "exp", attrs, row.concept)
        out[k] = (gain[:, :n_e] @ a_e) @ waves[0] + (gain[:, n_e : n_e + n_l] @ a_l) @ waves[1]
    return list(p.channels), out * 1e-6  # uV -> V


def write_subject(
    root: Path | str,
    section: Mapping[str, Any],
    simulation: Mapping[str, Any],
    eeg_simulation: Mapping[str, Any],
    seed: int,
    subject: str,
) -> list[Path]:
    """Every session's ``raw_eeg_training.npy`` and ``raw_eeg_test.npy`` of one simulated subject under
    ``root`` (``section``: the :func:`dataset_section` of the config)."""
    from megdecode.datasets.things_eeg2 import ThingsEeg2Layout, settings_from_config
    from megdecode.simulate.eeg import EegSimParams

    settings = settings_from_config(section)
    layout = ThingsEeg2Layout(Path(root), settings)
    sim, p = section["simulation"], EegSimParams.from_config(eeg_simulation)
    shown, _, truth = _study_images(simulation, seed)
    names, responses = evoked_responses(
        simulation, eeg_simulation, shown, truth, seed, subject, settings.sfreq
    )
    noise_sd = p.electrode_uv_rthz * np.sqrt(settings.sfreq / 2) * 1e-6
    written = []
    for session in settings.sessions:
        for partition, per_session in (
            ("training", sim["train_per_session"]),
            ("test", sim["test_per_session"]),
        ):
            rng = derive_rng(seed, "things-eeg2-simulation", subject, session, partition)
            rows = np.flatnonzero(shown["partition"].to_numpy() == partition)
            codes = rsvp_codes(
                len(rows), int(per_session), int(sim["targets_per_session"]), settings.target_code, rng
            )
            onsets = rsvp_onsets(len(codes), p.soa_s, p.sequence_length, float(sim["gap_s"]), settings.sfreq)
            n_samples = int(onsets[-1] + TAIL_S * settings.sfreq)
            eeg = rng.normal(scale=noise_sd, size=(len(names), n_samples))
            data = recording(eeg, onsets, codes, {k + 1: responses[r] for k, r in enumerate(rows)})
            path = layout.raw(subject, session, partition)
            write_raw(path, raw_content(data, [*names, STIM], settings.sfreq))
            written.append(path)
    log.info("simulated THINGS-EEG2 sub-%s: %d raw files", subject, len(written))
    return written


def study_attributes(simulation: Mapping[str, Any], seed: int) -> pd.DataFrame:
    """``image_id``, ``shape``, ``colour``, ``texture`` of the simulated dataset's images (the simulated
    study's attributes, for the ``attributes`` latents and caption templates)."""
    shown, _, _ = _study_images(simulation, seed)
    return shown[["image_id", "shape", "colour", "texture"]].reset_index(drop=True)
