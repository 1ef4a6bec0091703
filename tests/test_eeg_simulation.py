"""The simulated EEG study and its learning curve: electrodes, forward fields, rapid presentation, control."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from megdecode.artifacts.latents import Latents
from megdecode.artifacts.predictions import TargetScaler
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, TRAIN, VAL
from megdecode.config import section_defaults
from megdecode.learning_curve.eeg import RsvpEpochSimulator, eeg_grid, neighbour_pools
from megdecode.learning_curve.epochs import baseline_correct, subject_dipoles
from megdecode.learning_curve.experiment import Design
from megdecode.metrics.retrieval import item_scores
from megdecode.ridge import fit_ridge
from megdecode.simulate.eeg import (
    EegSimParams,
    eeg_gain,
    electrode_positions,
    neighbour_offsets,
    neighbour_probability,
)
from megdecode.simulate.params import SimulationParams
from megdecode.simulate.stimuli import build_stimuli
from megdecode.simulate.subject import subject_anatomy

RECIPE = section_defaults("things_eeg2")["preprocessing"]
EEG = EegSimParams.from_config(section_defaults("eeg")["simulation"])


@pytest.fixture(scope="module")
def study():
    cfg = section_defaults("simulation")
    cfg["stimuli"].update(n_train_concepts=36, n_test_concepts=16, exemplars_per_train_concept=12)
    cfg["stimuli"].update(exemplars_per_test_concept=4, image_size=32)
    params = SimulationParams.from_config(cfg)
    table, _, truth = build_stimuli(params, 0)
    return params, table, truth


@pytest.fixture(scope="module")
def anatomy(study):
    return subject_anatomy(study[0], 0, "01")


def test_recipe_keeps_the_17_posterior_electrodes_on_a_100_sample_grid():
    assert EEG.picks(RECIPE["channel_regex"]) == [
        "Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1",
        "P5", "PO7", "PO3", "POz", "PO4", "PO8", "P6", "P2",
    ]  # fmt: skip
    grid = eeg_grid(RECIPE, EEG)
    assert len(grid.times) == 100 and grid.times[0] == pytest.approx(-0.2)
    assert grid.times[-1] == pytest.approx(0.79) and (grid.l_freq, grid.h_freq) == (0.01, 50.0)


def test_electrodes_sit_on_the_head_sphere_in_their_montage_directions(anatomy):
    head = anatomy["head"]
    r0, radius = np.asarray(head["sphere_r0"]), head["head_radius"]
    pos = electrode_positions(EEG.montage, EEG.channels, r0, radius)
    assert pos.shape == (63, 3)
    np.testing.assert_allclose(np.linalg.norm(pos - r0, axis=1), radius)
    at = dict(zip(EEG.channels, pos - r0, strict=True))
    assert at["Oz"][1] < -0.08 and at["Fz"][1] > 0.04 and at["Cz"][2] > 0.08  # back, front, top
    assert at["P7"][0] < 0 < at["P8"][0]  # left, right
    with pytest.raises(ValueError, match="not in the"):
        electrode_positions(EEG.montage, ["Oz", "XYZ"], r0, radius)


def test_eeg_gain_is_average_referenced_and_largest_over_the_occipital_dipoles(study, anatomy):
    head = anatomy["head"]
    r0, radius = np.asarray(head["sphere_r0"]), head["head_radius"]
    pos = electrode_positions(EEG.montage, EEG.channels, r0, radius)
    dipoles = subject_dipoles(anatomy)
    referenced = eeg_gain(pos, dipoles, r0, radius, True)
    raw = eeg_gain(pos, dipoles, r0, radius, False)
    assert referenced.shape == (63, len(dipoles.pos))
    np.testing.assert_allclose(referenced.sum(axis=0), 0, atol=1e-9 * np.abs(referenced).max())
    np.testing.assert_allclose(referenced, raw - raw.mean(axis=0))
    early = np.abs(referenced[:, : study[0].early.n_dipoles]).mean(axis=1)
    posterior = [EEG.channels.index(c) for c in EEG.picks("^O")]
    frontal = [EEG.channels.index(c) for c in ("Fp1", "Fp2", "AF7", "AF8")]
    assert early[posterior].mean() > 2 * early[frontal].mean()
    # uV per Am: a 20 nAm occipital dipole gives microvolts, as on the scalp
    assert 0.5 < np.abs(referenced[posterior, 0] * 20e-9).max() < 50


def test_neighbour_offsets_and_their_probabilities_have_known_values():
    assert neighbour_offsets(EEG, -0.2, 0.8, 0.7).tolist() == [-4, -3, -2, -1, 1, 2, 3]
    # a 50 ms response of the image shown 200 ms before still ends inside a window from -0.2 s
    assert neighbour_offsets(EEG, -0.2, 0.8, 0.05).tolist() == [-1, 1, 2, 3]
    assert neighbour_offsets(EEG, 0.0, 0.5, 0.1).tolist() == [1, 2]
    np.testing.assert_allclose(neighbour_probability(EEG, np.array([-4, 1, 25])), [16 / 20, 19 / 20, 0])


def test_rsvp_epochs_are_the_trial_plus_its_neighbours(study):
    params, table, truth = study
    grid = eeg_grid(RECIPE, EEG)
    sim = RsvpEpochSimulator(params, truth, table, grid, 0, "01", EEG, RECIPE["channel_regex"])
    ids = table.loc[table.role == "exp", "image_id"].to_numpy(str)
    pool = ids[10:20]
    epochs, variables = sim.draw_rsvp(
        ids[:6].tolist(), [np.random.default_rng(k) for k in range(6)], [pool] * 6
    )
    assert epochs.shape == (6, 17, 100) and epochs.dtype == np.float32
    alone, _ = sim.draw(ids[:6].tolist(), [np.random.default_rng(k) for k in range(6)])
    again, _ = sim.draw_rsvp(ids[2:3].tolist(), [np.random.default_rng(2)], [pool])
    np.testing.assert_array_equal(again[0], epochs[2])  # a trial depends only on its own generator
    neighbours = variables[[f"image_at_{k:+d}" for k in sim.offsets]].to_numpy(str)
    for k, position in enumerate(variables["sequence_position"]):
        exists = (position + sim.offsets >= 0) & (position + sim.offsets < EEG.sequence_length)
        assert ((neighbours[k] != "") == exists).all() and set(neighbours[k][exists]) <= set(pool)
        assert not np.allclose(epochs[k], alone[k]) if exists.any() else np.allclose(epochs[k], alone[k])
    single = dataclasses.replace(EEG, sequence_length=1)  # a sequence of one image has no neighbours
    lone = RsvpEpochSimulator(params, truth, table, grid, 0, "01", single, RECIPE["channel_regex"])
    solo, _ = lone.draw_rsvp(ids[:2].tolist(), [np.random.default_rng(k) for k in range(2)], [pool] * 2)
    np.testing.assert_array_equal(solo, alone[:2])


def test_neighbour_pools_never_mix_roles(study):
    _, table, _ = study
    design = Design.draw(table, 100, 20, 2, np.random.default_rng(0))
    pools = neighbour_pools(design, table)
    test_images = set(design.test_large) | set(design.test_small)
    assert not (set(pools[TRAIN]) | set(pools[VAL])) & test_images
    assert not set(pools[TRAIN]) & set(design.val) and set(design.train) <= set(pools[TRAIN])
    assert set(pools[TEST_SMALL]) == set(design.test_small)
    assert set(pools[TEST_LARGE]) == set(design.test_large)


def _ridge_top5(x_train, y_train, x_val, y_val, x_test, ids, latents, scaler):
    model = fit_ridge(x_train, y_train, [1e1, 1e2, 1e3, 1e4, 1e5], x_val, y_val)
    gallery = scaler.transform(latents.values[latents.rows(np.unique(ids))])
    return float(item_scores(model.predict(x_test), ids, gallery)["top5_acc"].mean())


def test_shifting_eeg_epochs_by_one_trial_drops_retrieval_to_chance(study):
    """Negative control of the alignment: ridge onto the attribute code identifies the large test set's
    images well above chance; pairing each test epoch with the image of the trial shown before it (in a
    random presentation order) falls to chance."""
    params, table, truth = study
    grid = eeg_grid(RECIPE, EEG)
    sim = RsvpEpochSimulator(params, truth, table, grid, 0, "01", EEG, RECIPE["channel_regex"])
    design = Design.draw(table, 330, 60, 1, np.random.default_rng(0))
    pools = neighbour_pools(design, table)
    shown = np.random.default_rng(1).permutation(design.test_large).tolist()  # presentation order
    roles = {TRAIN: design.train, VAL: design.val, TEST_LARGE: shown}
    shown_images = table[table.role != "catch"].set_index("image_id")
    attributes = shown_images.loc[:, ["shape", "colour", "texture"]].astype(str)
    one_hot = np.concatenate(
        [(attributes[[a]].to_numpy(str) == np.unique(attributes[a])).astype(float) for a in attributes],
        axis=1,
    )
    latents = Latents(attributes.index.to_numpy(str), one_hot.astype(np.float32))
    scaler = TargetScaler.fit(latents, np.asarray(design.train))
    x, y = {}, {}
    for r, images in roles.items():
        rngs = [np.random.default_rng([7, len(x), k]) for k in range(len(images))]
        epochs, _ = sim.draw_rsvp(images, rngs, [pools[r]] * len(images))
        x[r] = baseline_correct(epochs, grid.times)[:, :, 20:].reshape(len(images), -1)
        y[r] = scaler.transform(latents.values[latents.rows(np.asarray(images))])
    sd = x[TRAIN].std(axis=0)
    x = {r: v / sd for r, v in x.items()}
    ids, chance = np.asarray(shown), 5 / len(shown)
    fit = (x[TRAIN], y[TRAIN], x[VAL], y[VAL])
    aligned = _ridge_top5(*fit, x[TEST_LARGE], ids, latents, scaler)
    shifted = _ridge_top5(*fit, np.roll(x[TEST_LARGE], -1, axis=0), ids, latents, scaler)
    assert aligned > 2 * chance, (aligned, chance)
    assert abs(shifted - chance) < 0.1, (shifted, chance)
