"""The renderer's attribute values (12 shapes x 12 colours x 8 textures) and a THINGS-sized concept set."""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np
import pandas as pd
import pytest

from megdecode.config import load_schema, validate_config
from megdecode.latents.attributes import AttributesOptions, attribute_codes
from megdecode.seeds import derive_rng
from megdecode.simulate.params import COLOURS, SHAPES, TEXTURES, StimulusWorldParams
from megdecode.simulate.stimuli import (
    ATTRIBUTES,
    LOW_LEVEL_FEATURES,
    RGB,
    TEXTURE_WORD,
    Concept,
    _grid,
    _shape_mask,
    _texture,
    draw_exemplar,
    encoding_ground_truth,
    late_code,
    render_image,
    split_concepts,
)

#: The values every config had before the renderer knew more: still the schema's defaults.
DEFAULT_VALUES = {
    "shapes": ["circle", "square", "triangle", "star", "cross", "ring"],
    "colours": ["red", "green", "blue", "yellow", "purple", "cyan"],
    "textures": ["solid", "stripes", "dots", "checker"],
}
ALL_VALUES = {"shapes": list(SHAPES), "colours": list(COLOURS), "textures": list(TEXTURES)}


def _rotated(t: float, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.float32(np.cos(t)), np.float32(np.sin(t))
    return c * x + s * y, c * y - s * x


def test_schema_lists_the_renderers_values_and_keeps_the_old_defaults():
    stimuli = load_schema()["properties"]["simulation"]["properties"]["stimuli"]["properties"]
    for key, known in ALL_VALUES.items():
        assert stimuli[key]["items"]["enum"] == known
        assert stimuli[key]["default"] == DEFAULT_VALUES[key]
    assert list(RGB) == list(COLOURS) and list(TEXTURE_WORD) == list(TEXTURES)
    assert len(set(TEXTURE_WORD.values())) == len(TEXTURES)
    assert len(SHAPES) * len(COLOURS) * len(TEXTURES) == 1152
    validated = validate_config({"simulation": {}})["simulation"]["stimuli"]
    assert {k: validated[k] for k in DEFAULT_VALUES} == DEFAULT_VALUES
    validate_config({"simulation": {"stimuli": ALL_VALUES}})


def test_every_shape_is_a_distinct_silhouette_at_any_rotation():
    x, y = _grid(161)
    x, y = 1.2 * x, 1.2 * y  # a margin around the unit square
    masks = {s: _shape_mask(s, x, y) for s in SHAPES}
    for shape, mask in masks.items():
        area = mask.mean() * 2.4**2
        assert 0.9 < area < np.pi + 0.01, shape  # non-empty, within the unit disc's area
        assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any()
    angles = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    for a, b in itertools.combinations(SHAPES, 2):
        overlap = max(
            (masks[a] & (rb := _shape_mask(b, *_rotated(t, x, y)))).sum() / (masks[a] | rb).sum()
            for t in angles
        )
        assert overlap < 0.8, (a, b, overlap)


def test_every_texture_is_a_distinct_pattern_at_any_rotation_and_phase():
    x, y = _grid(128)
    inside = np.hypot(x, y) < 0.9
    patterns = {t: _texture(t, x, y, 4.0, 0.3) for t in TEXTURES}
    for texture, pattern in patterns.items():
        assert pattern.dtype == np.float32 and set(np.unique(pattern)) <= {np.float32(1), np.float32(0.35)}
        assert (texture == "solid") == (np.unique(pattern[inside]).size == 1), texture
    for a, b in itertools.combinations(TEXTURES, 2):
        differ = min(
            (patterns[a] != _texture(b, *_rotated(t, x, y), 4.0, phase))[inside].mean()
            for t in np.linspace(0, np.pi, 18, endpoint=False)
            for phase in (0.0, 0.25, 0.5, 0.75)
        )
        assert differ > 0.15, (a, b, differ)


def test_colours_are_saturated_and_far_apart_beyond_the_exemplar_jitter():
    rgb = np.array([RGB[c] for c in COLOURS])
    assert (rgb.max(axis=1) - rgb.min(axis=1) >= 0.35).all()  # none grey (backgrounds are grey)
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=2)[np.triu_indices(len(rgb), 1)]
    assert distances.min() > 0.34 > 2 * np.linalg.norm([0.06] * 3)


def test_every_new_value_renders_an_image_of_its_own():
    ex = draw_exemplar(derive_rng(0, "values"))
    ex = dataclasses.replace(ex, cx=0.0, cy=0.0, scale=0.5, background=0.5, bg_gradient=0.0)
    base = Concept("square", "red", "solid")
    variants = [dataclasses.replace(base, shape=s) for s in SHAPES]
    variants += [dataclasses.replace(base, colour=c) for c in COLOURS]
    variants += [dataclasses.replace(base, texture=t) for t in TEXTURES]
    images = {v: render_image(v, ex) for v in variants}
    for concept, img in images.items():
        assert (np.abs(img.astype(int) - 128).sum(axis=2) > 60).mean() > 0.03, concept  # an object is drawn
    assert len({img.tobytes() for img in images.values()}) == len(images)


@pytest.mark.parametrize(
    ("concept", "known"),
    [
        (Concept("blob", "red", "solid"), SHAPES),
        (Concept("circle", "grey", "solid"), COLOURS),
        (Concept("circle", "red", "plaid"), TEXTURES),
    ],
)
def test_unknown_values_are_refused_with_the_known_ones(concept, known):
    with pytest.raises(ValueError, match="unknown") as err:
        render_image(concept, draw_exemplar(derive_rng(0, "bad")), size=16)
    assert all(v in str(err.value) for v in known)


def _things_shaped(world: str) -> StimulusWorldParams:
    stimuli = {**ALL_VALUES, "n_train_concepts": 1024, "n_test_concepts": 24}
    stimuli |= {"exemplars_per_train_concept": 12, "exemplars_per_test_concept": 4}
    cfg = validate_config({"simulation": {"stimuli": stimuli, "responses": {"world": world}}})
    return StimulusWorldParams.from_config(cfg["simulation"])


def test_split_of_1024_training_concepts_is_fast_and_compositional():
    p = _things_shaped("linear").stimuli
    tic = time.perf_counter()
    train, test = split_concepts(p, derive_rng(0, "stimuli"))
    assert time.perf_counter() - tic < 2.0
    assert len(set(train)) == 1024 and len(set(test)) == 24 and not set(train) & set(test)
    for attr in ATTRIBUTES:
        assert {getattr(c, attr) for c in test} <= {getattr(c, attr) for c in train}
        assert {getattr(c, attr) for c in train} == set(getattr(p, attr + "s"))


def _table(train: list[Concept], test: list[Concept]) -> pd.DataFrame:
    rows = [
        {"image_id": f"{c.name}_01", "concept": c.name, "role": "exp", "concept_split": split}
        | {a: getattr(c, a) for a in ATTRIBUTES}
        for split, concepts in (("train", train), ("test", test))
        for c in concepts
    ]
    return pd.DataFrame(rows)


def test_worlds_and_attribute_latent_scale_to_1152_values():
    params = _things_shaped("nonlinear")
    train, test = split_concepts(params.stimuli, derive_rng(0, "stimuli"))
    table = _table(train, test)
    feats = derive_rng(0, "features").uniform(0.1, 0.9, (len(table), len(LOW_LEVEL_FEATURES)))
    truth = encoding_ground_truth(params, table, feats, seed=0)
    late = truth["components"]["late"]
    assert sum(len(v) for v in late["pair_codes"].values()) == 144
    assert len(late["concept_codes"]) == 1048
    codes = np.stack(
        [late_code(truth, r.concept, {a: getattr(r, a) for a in ATTRIBUTES}) for r in table.itertuples()]
    )
    assert np.unique(codes.round(6), axis=0).shape[0] == 1048  # every concept its own code
    linear = encoding_ground_truth(_things_shaped("linear"), table, feats, seed=0)
    assert [len(v) for v in linear["components"]["late"]["attribute_codes"].values()] == [12, 12, 8]
    latent, vocab = attribute_codes(table, AttributesOptions())
    assert latent.shape == (1048, 32) and (latent.sum(axis=1) == 3).all()
    assert {k: len(v) for k, v in vocab.items()} == {"shape": 12, "colour": 12, "texture": 8}
