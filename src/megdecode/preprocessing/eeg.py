"""EEG preprocessing to the THINGS-EEG2 recipe (Gifford et al. 2022; gifale95/eeg_encoding
``02_eeg_preprocessing``), on arrays: channel selection, epoching, baseline, resampling, then multivariate
noise normalisation (MVNN) per session.

The recipe as published [V, ``preprocessing_utils.epoching`` and ``mvnn``]: keep the occipital and parietal
channels (regular expression ``^O *|^P *``: 17 of the 63), reject target trials (code 99999), epoch -0.2 to
0.8 s, baseline on the pre-stimulus part (MNE ``baseline=(None, 0)``), resample to 100 Hz with MNE's FFT
resampling (``Epochs.resample``), keep at most 2 (training) or 20 (test) repetitions of an image per session;
then per session a covariance per image and time point (Ledoit-Wolf shrinkage on standardised data, sklearn's
``_cov(X, shrinkage='auto')``), averaged over time points, images and the two partitions; every epoch is
multiplied by its inverse square root. No re-referencing in that recipe: ``average_reference`` is an option
(off by default).

:func:`epoch_session` gives the numbers of the MNE chain (``mne.Epochs(...).resample``) without building MNE
objects for tens of thousands of epochs; tests/test_things_eeg2.py checks it against that chain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from megdecode.config import dataclass_from_section

MVNN_CHOICES = ("time", "epochs", "none")


@dataclass(frozen=True)
class EegRecipe:
    """The ``things_eeg2.preprocessing`` config section (defaults in ``things_eeg2.schema.yaml`` only)."""

    channel_regex: str
    tmin: float
    tmax: float
    baseline: bool  # subtract the mean of tmin..0 s (MNE baseline=(None, 0))
    resample_hz: float
    average_reference: bool
    mvnn: str
    max_repetitions_training: int
    max_repetitions_test: int

    def __post_init__(self) -> None:
        if self.mvnn not in MVNN_CHOICES:
            raise ValueError(f"things_eeg2.preprocessing.mvnn {self.mvnn!r}: use one of {list(MVNN_CHOICES)}")
        if not self.tmin < 0 < self.tmax:
            raise ValueError(
                f"things_eeg2.preprocessing: tmin {self.tmin} < 0 < tmax {self.tmax} is required"
            )

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> EegRecipe:
        """The recipe of a validated ``things_eeg2.preprocessing`` slice."""
        return dataclass_from_section(cls, section, "things_eeg2.preprocessing")

    def max_repetitions(self, partition: str) -> int:
        return self.max_repetitions_training if partition == "training" else self.max_repetitions_test


@dataclass(frozen=True)
class SessionEpochs:
    """Epochs of one raw file: ``data`` (epochs, channels, times) and, per epoch, the index of its event."""

    data: np.ndarray
    event_index: np.ndarray
    ch_names: list[str]
    times: np.ndarray


def pick_channels(ch_names: Sequence[str], regex: str) -> list[int]:
    """Indices of the channels whose name matches ``regex`` from its start (``mne.pick_channels_regexp``)."""
    pattern = re.compile(regex)
    return [i for i, name in enumerate(ch_names) if pattern.match(name)]


def epoch_session(
    eeg: np.ndarray,
    ch_names: Sequence[str],
    sfreq: float,
    onsets: np.ndarray,
    recipe: EegRecipe,
) -> SessionEpochs:
    """Epoch one recording ``eeg`` (EEG channels, samples) at ``onsets`` (sample indices) with ``recipe``.

    Average reference (if set) over all EEG channels, then channel selection, windows ``tmin..tmax`` (epochs
    that would leave the recording are dropped, as MNE drops them), baseline, FFT resampling as
    ``mne.Epochs.resample``.
    """
    import mne

    data = np.asarray(eeg, dtype=np.float64)
    if recipe.average_reference:
        data = data - data.mean(axis=0, keepdims=True)
    picks = pick_channels(ch_names, recipe.channel_regex)
    if not picks:
        raise ValueError(
            f"no channel matches things_eeg2.preprocessing.channel_regex {recipe.channel_regex!r}"
        )
    data = data[picks]
    start, stop = int(round(recipe.tmin * sfreq)), int(round(recipe.tmax * sfreq))
    onsets = np.asarray(onsets, dtype=np.int64)
    inside = np.flatnonzero((onsets + start >= 0) & (onsets + stop < data.shape[1]))
    offsets = np.arange(start, stop + 1)
    epochs = data[:, onsets[inside, None] + offsets[None, :]].transpose(1, 0, 2)  # (epochs, channels, times)
    if recipe.baseline:
        epochs = epochs - epochs[:, :, : 1 - start].mean(axis=2, keepdims=True)
    times = offsets / sfreq
    if recipe.resample_hz < sfreq:
        epochs = mne.filter.resample(
            epochs, up=recipe.resample_hz, down=sfreq, npad="auto", pad="edge", axis=-1, verbose="error"
        )
        times = times[0] + np.arange(epochs.shape[-1]) / recipe.resample_hz
    return SessionEpochs(epochs, inside, [ch_names[i] for i in picks], times)


def first_repetitions(image_numbers: np.ndarray, max_repetitions: int) -> np.ndarray:
    """Indices of the first ``max_repetitions`` presentations of each image, in presentation order."""
    order = np.argsort(image_numbers, kind="stable")
    sorted_numbers = image_numbers[order]
    starts = np.searchsorted(sorted_numbers, sorted_numbers, side="left")
    rank = np.arange(len(order)) - starts
    return np.sort(order[rank < max_repetitions])


def shrunk_covariance(x: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariance of standardised data, scaled back (sklearn's ``_cov(x, shrinkage='auto')``),
    batched: ``x`` (..., samples, features) -> (..., features, features)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-2]
    centred = x - x.mean(axis=-2, keepdims=True)
    scale = np.sqrt((centred**2).mean(axis=-2))
    scale = np.where(scale == 0, 1.0, scale)
    z = centred / scale[..., None, :]
    p = z.shape[-1]
    emp = np.einsum("...ni,...nj->...ij", z, z) / n
    z2 = z**2
    trace = z2.sum(axis=-2) / n  # (..., p)
    mu = trace.sum(axis=-1) / p
    beta_ = np.einsum("...ni,...nj->...ij", z2, z2).sum(axis=(-2, -1))
    delta_ = (np.einsum("...ni,...nj->...ij", z, z) ** 2).sum(axis=(-2, -1)) / n**2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * trace.sum(axis=-1) + p * mu**2) / p
    beta = np.minimum(beta, delta)
    shrinkage = np.divide(beta, delta, out=np.zeros_like(beta), where=delta != 0)
    eye = np.eye(p)
    shrunk = (1 - shrinkage)[..., None, None] * emp + (shrinkage * mu)[..., None, None] * eye
    return scale[..., :, None] * shrunk * scale[..., None, :]


def noise_covariance(epochs: np.ndarray, image_numbers: np.ndarray, over: str = "time") -> np.ndarray:
    """The recipe's noise covariance of one partition: per image, the shrunk covariance of its repetitions at
    each time point averaged over time (``over='time'``), or of each repetition's time course averaged over
    repetitions (``'epochs'``); then the mean over images. Images seen once do not enter."""
    covs = []
    for number in np.unique(image_numbers):
        trials = epochs[image_numbers == number]  # (repetitions, channels, times)
        if over == "time":
            if len(trials) < 2:
                continue
            covs.append(shrunk_covariance(trials.transpose(2, 0, 1)).mean(axis=0))
        else:
            covs.append(shrunk_covariance(trials.transpose(0, 2, 1)).mean(axis=0))
    if not covs:
        raise ValueError("MVNN needs images shown at least twice in a session (over='time')")
    return np.mean(covs, axis=0)


def whitener(partitions: Sequence[tuple[np.ndarray, np.ndarray]], over: str = "time") -> np.ndarray:
    """Inverse square root of the session's noise covariance, averaged over ``partitions`` (each
    ``(epochs, image_numbers)``): the MVNN matrix of one session."""
    sigma = np.mean([noise_covariance(e, n, over) for e, n in partitions], axis=0)
    inverse_root = scipy.linalg.fractional_matrix_power(sigma, -0.5)
    return np.real_if_close(inverse_root).astype(np.float64)


def apply_whitener(epochs: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Whiten every time point of every epoch: ``x_t -> x_t @ matrix`` (channels axis 1)."""
    return np.einsum("ect,cd->edt", epochs, matrix)


@dataclass(frozen=True)
class PartitionEpochs:
    """Epochs of one partition of one session after the recipe: ``data`` (epochs, channels, times) and the
    image number of each epoch (targets rejected, at most ``max_repetitions`` per image)."""

    data: np.ndarray
    image_numbers: np.ndarray
    ch_names: list[str]
    times: np.ndarray


def preprocess_session(
    recordings: Mapping[str, tuple[np.ndarray, Sequence[str], float, np.ndarray, np.ndarray]],
    recipe: EegRecipe,
) -> dict[str, PartitionEpochs]:
    """The recipe on one session: ``recordings[partition] = (eeg, ch_names, sfreq, onsets, image_numbers)``
    (image number 0 = a target, rejected). Epochs each partition, keeps the first ``max_repetitions`` of each
    image, then whitens both partitions with the session's MVNN matrix (unless ``recipe.mvnn == 'none'``)."""
    out = {}
    for partition, (eeg, ch_names, sfreq, onsets, numbers) in recordings.items():
        numbers = np.asarray(numbers)
        shown = np.flatnonzero(numbers > 0)
        epochs = epoch_session(eeg, ch_names, sfreq, np.asarray(onsets)[shown], recipe)
        kept_numbers = numbers[shown][epochs.event_index]
        keep = first_repetitions(kept_numbers, recipe.max_repetitions(partition))
        out[partition] = PartitionEpochs(epochs.data[keep], kept_numbers[keep], epochs.ch_names, epochs.times)
    if recipe.mvnn != "none":
        matrix = whitener([(p.data, p.image_numbers) for p in out.values()], over=recipe.mvnn)
        out = {
            k: PartitionEpochs(apply_whitener(p.data, matrix), p.image_numbers, p.ch_names, p.times)
            for k, p in out.items()
        }
    return out


def stack_by_image(sessions: Sequence[PartitionEpochs], n_images: int) -> np.ndarray:
    """Epochs of one partition over sessions as (images, repetitions, channels, times), image ``k`` at row
    ``k - 1`` and repetitions in session then presentation order (the published files' shape; they shuffle the
    repetitions, this keeps their order). Every image needs the same number of repetitions."""
    numbers = np.concatenate([s.image_numbers for s in sessions])
    data = np.concatenate([s.data for s in sessions])
    counts = np.bincount(numbers, minlength=n_images + 1)[1:]
    if len(counts) != n_images or counts.min() != counts.max():
        raise ValueError(
            f"repetitions per image differ ({counts.min()} .. {counts.max()} over {n_images} images): a "
            f"session "
            "is missing or an image was shown too rarely"
        )
    order = np.argsort(numbers, kind="stable")
    return data[order].reshape(n_images, counts[0], *data.shape[1:])


def preprocess_subject(
    reader: Any, subject: str, recipe: EegRecipe
) -> dict[str, tuple[np.ndarray, list, np.ndarray]]:
    """The recipe on every configured session of ``subject`` (a
    :class:`~megdecode.datasets.things_eeg2.ThingsEeg2Reader`): per partition, (images, repetitions, channels,
    times) EEG, channel names and times."""
    per_session = []
    for session in reader.settings.sessions:
        recordings = {}
        for partition in ("training", "test"):
            raw, trials = reader.session(subject, session, partition)
            eeg = raw.eeg
            onsets, numbers = trials["sample"].to_numpy(), trials["image_number"].to_numpy()
            recordings[partition] = (eeg, raw.eeg_names, raw.sfreq, onsets, numbers)
        per_session.append(preprocess_session(recordings, recipe))
    out = {}
    for partition in ("training", "test"):
        sessions = [s[partition] for s in per_session]
        stacked = stack_by_image(sessions, reader.settings.n_images(partition))
        out[partition] = (stacked, sessions[0].ch_names, sessions[0].times)
    return out


def write_study_subject(section: Mapping[str, Any], subject: str, outputs: Mapping[str, str]) -> None:
    """Rule ``things_eeg2_preprocess``: the recipe of a validated ``things_eeg2`` section on one subject,
    written to ``outputs[partition]`` (:mod:`megdecode.artifacts.eeg`)."""
    from megdecode.artifacts.eeg import EegPartition, write_partition
    from megdecode.datasets.things_eeg2 import ThingsEeg2Reader, settings_from_config

    settings = settings_from_config(section)
    reader = ThingsEeg2Reader(settings.root, settings)
    reader.trials(subject)  # every session present, every image shown often enough (names what is not)
    for partition, (eeg, ch_names, times) in preprocess_subject(
        reader, subject, EegRecipe.from_config(section["preprocessing"])
    ).items():
        numbers = np.arange(1, eeg.shape[0] + 1)
        write_partition(EegPartition(eeg, numbers, ch_names, times), outputs[partition])
