"""Compositional stimuli: concept design (shape x colour x texture), rendering, low-level image features.

Concepts are attribute combinations. Test concepts are held out like THINGS-MEG's: every attribute value of a
test concept also occurs in some training concept, so a decoder of attributes can generalise to them.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from megdecode.artifacts.sourcedata import write_ground_truth
from megdecode.artifacts.stimuli import write_image_checksums, write_stimuli
from megdecode.io import atomic_output
from megdecode.seeds import derive_rng
from megdecode.simulate.params import COLOURS, SHAPES, TEXTURES, StimulusParams, StimulusWorldParams

log = logging.getLogger(__name__)

#: Object colours (RGB in [0, 1]): saturated, none grey (backgrounds are grey), any two at least 0.34 apart,
#: more than twice the largest exemplar colour jitter (0.06 per channel).
RGB = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.15, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.55, 0.15, 0.75),
    "cyan": (0.10, 0.80, 0.85),
    "orange": (0.95, 0.50, 0.05),
    "pink": (0.98, 0.60, 0.78),
    "brown": (0.50, 0.28, 0.08),
    "lime": (0.62, 0.95, 0.15),
    "navy": (0.05, 0.08, 0.45),
    "magenta": (0.92, 0.10, 0.72),
}
#: Each texture's adjective in concept names (``{colour}_{word}_{shape}``).
TEXTURE_WORD = {
    "solid": "plain",
    "stripes": "striped",
    "dots": "dotted",
    "checker": "checkered",
    "grid": "gridded",
    "rings": "ringed",
    "waves": "wavy",
    "rays": "rayed",
}
#: Low-level statistics computed from each rendered image; they drive the early component.
LOW_LEVEL_FEATURES = (
    "mean_red",
    "mean_green",
    "mean_blue",
    "luminance_contrast",
    "high_sf_energy",
    "centroid_x",
    "centroid_y",
    "object_area",
)
STIMULI_COLUMNS = ["image_id", "file", "concept", "exemplar", "role", "concept_split", "value"]
ATTRIBUTES = ("shape", "colour", "texture")
#: Nonlinear world: added to a signed statistic before the Naka-Rushton function so that its input is >= 0.
#: Centroids (origin at the image centre, in [-1, 1]) are then measured from the left / bottom edge ([0, 2]).
#: The function is scale-invariant (c and c50 scale together), so only the origin matters.
NAKA_RUSHTON_OFFSET = {"centroid_x": 1.0, "centroid_y": 1.0}
#: Nonlinear world: SD of each entry of a (shape, colour) pair code and of a concept code (the prior a ceiling
#: marginalises a code it cannot know with).
CONJUNCTIVE_CODE_SD = 1 / np.sqrt(2)


@dataclasses.dataclass(frozen=True)
class Concept:
    shape: str
    colour: str
    texture: str

    @property
    def name(self) -> str:
        return f"{self.colour}_{TEXTURE_WORD[self.texture]}_{self.shape}"


@dataclasses.dataclass(frozen=True)
class Exemplar:
    """Per-image rendering parameters (what varies between exemplars of one concept)."""

    cx: float
    cy: float
    scale: float
    rotation: float
    background: float
    bg_gradient: float
    bg_angle: float
    colour_jitter: tuple[float, float, float]
    texture_freq: float
    texture_phase: float


def split_concepts(p: StimulusParams, rng: np.random.Generator) -> tuple[list[Concept], list[Concept]]:
    """Draw training and held-out test concepts; each test attribute value also occurs in training."""
    combos = [Concept(s, c, t) for s, c, t in itertools.product(p.shapes, p.colours, p.textures)]
    need = p.n_train_concepts + p.n_test_concepts
    if need > len(combos):
        raise ValueError(
            f"simulation.stimuli asks for {need} concepts but only {len(combos)} attribute "
            "combinations exist; lower n_train_concepts/n_test_concepts or add shapes/colours/textures"
        )
    for _ in range(1000):
        order = rng.permutation(len(combos))
        test = [combos[i] for i in order[: p.n_test_concepts]]
        train = [combos[i] for i in order[p.n_test_concepts : need]]
        seen = {a: {getattr(c, a) for c in train} for a in ATTRIBUTES}
        if all(getattr(c, a) in seen[a] for c in test for a in ATTRIBUTES):
            return sorted(train, key=lambda c: c.name), sorted(test, key=lambda c: c.name)
    raise ValueError("could not draw a compositional split; raise n_train_concepts")


def draw_exemplar(rng: np.random.Generator) -> Exemplar:
    return Exemplar(
        cx=float(rng.uniform(-0.25, 0.25)),
        cy=float(rng.uniform(-0.25, 0.25)),
        scale=float(rng.uniform(0.35, 0.6)),
        rotation=float(rng.uniform(0, 2 * np.pi)),
        background=float(rng.uniform(0.25, 0.75)),
        bg_gradient=float(rng.uniform(0.0, 0.25)),
        bg_angle=float(rng.uniform(0, 2 * np.pi)),
        colour_jitter=tuple(float(x) for x in rng.uniform(-0.06, 0.06, 3)),
        texture_freq=float(rng.uniform(3.0, 5.0)),
        texture_phase=float(rng.uniform(0, 1)),
    )


def _shape_mask(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean membership of local coordinates (unit size) in a shape (one of :data:`SHAPES`).

    Exemplars rotate objects at random, so shapes differ by silhouette, not by orientation: the largest
    overlap (intersection over union) of two shapes at any relative rotation is 0.78 (circle vs square)."""
    r = np.hypot(x, y)
    if shape == "circle":
        return r < 1.0
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) < 0.8
    if shape == "triangle":
        # equilateral triangle inscribed in the unit circle, pointing up
        return (y > -0.5) & (np.sqrt(3) * x + y < 1.0) & (-np.sqrt(3) * x + y < 1.0)
    if shape == "star":
        theta = np.arctan2(y, x)
        return r < 0.45 + 0.55 * np.abs(np.cos(2.5 * (theta - np.pi / 2))) ** 2
    if shape == "cross":
        return ((np.abs(x) < 0.3) & (np.abs(y) < 0.95)) | ((np.abs(y) < 0.3) & (np.abs(x) < 0.95))
    if shape == "ring":
        return (r < 1.0) & (r > 0.55)
    if shape == "diamond":  # a rhombus twice as tall as wide (a square would be a rotated square)
        return np.abs(x) / 0.55 + np.abs(y) < 1.0
    if shape == "ellipse":
        return x * x + (y / 0.5) ** 2 < 1.0
    if shape == "crescent":  # the unit disc minus a disc shifted to the right
        return (r < 1.0) & (np.hypot(x - 0.5, y) > 0.8)
    if shape == "heart":  # (u^2 + v^2 - 1)^3 < u^2 v^3, scaled and shifted into the unit disc
        u, v = 1.15 * x, 1.15 * y + 0.15
        return (u * u + v * v - 1) ** 3 < u * u * v**3
    if shape == "arrow":  # a shaft and a triangular head, pointing right
        shaft = (np.abs(y) < 0.22) & (x > -0.95) & (x < 0.2)
        return shaft | ((x >= 0.05) & (np.abs(y) < 0.8 * (0.95 - x) / 0.9))
    if shape == "frame":  # a square outline
        side = np.maximum(np.abs(x), np.abs(y))
        return (side < 0.8) & (side > 0.45)
    raise ValueError(f"unknown shape '{shape}' (known: {', '.join(SHAPES)})")


def _texture(texture: str, x: np.ndarray, y: np.ndarray, freq: float, phase: float) -> np.ndarray:
    """Brightness modulation (1 or 0.35) inside the object, in the object's own coordinates (one of
    :data:`TEXTURES`). Objects rotate at random, so a texture's orientation is not a feature: stripes at
    another angle would be stripes."""
    hi, lo = np.float32(1.0), np.float32(0.35)
    if texture == "solid":
        return np.ones_like(x)
    u = x * np.float32(freq / 2) + np.float32(phase)
    if texture == "stripes":
        return np.where(u % 1 < 0.5, hi, lo)
    if texture == "waves":  # stripes that undulate along their length
        wavy = u + np.float32(0.3) * np.sin(np.float32(np.pi * freq / 2) * y)
        return np.where(wavy % 1 < 0.5, hi, lo)
    if texture == "rings":  # concentric rings around the object's centre
        return np.where((np.hypot(x, y) * np.float32(freq / 2) + np.float32(phase)) % 1 < 0.5, hi, lo)
    if texture == "rays":  # 6 to 10 sectors around the object's centre
        sectors = np.float32(round(2 * freq) / (2 * np.pi))
        return np.where((np.arctan2(y, x) * sectors + np.float32(phase)) % 1 < 0.5, hi, lo)
    v = y * np.float32(freq / 2) + np.float32(phase)
    if texture == "dots":
        gx, gy = u % 1 - 0.5, v % 1 - 0.5
        return np.where(gx * gx + gy * gy < 0.0625, lo, hi)
    if texture == "checker":
        return np.where((np.floor(u) + np.floor(v)) % 2 == 0, hi, lo)
    if texture == "grid":  # thin dark lines along both axes
        return np.where((u % 1 < 0.2) | (v % 1 < 0.2), lo, hi)
    raise ValueError(f"unknown texture '{texture}' (known: {', '.join(TEXTURES)})")


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    coords = ((np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1).astype(np.float32)
    xx, yy = np.meshgrid(coords, -coords)  # y up
    return xx, yy


def _downsample(a: np.ndarray, k: int) -> np.ndarray:
    n = a.shape[0] // k
    return a.reshape(n, k, n, k).mean(axis=(1, 3))


def render_image(concept: Concept, ex: Exemplar, size: int = 128, supersample: int = 2) -> np.ndarray:
    """Render one RGB image (uint8, size x size x 3); object edges anti-aliased by supersampling."""
    # background: grey level with a linear gradient
    bx, by = _grid(size)
    bg = np.clip(ex.background + ex.bg_gradient * (np.cos(ex.bg_angle) * bx + np.sin(ex.bg_angle) * by), 0, 1)
    # object coverage and shading, supersampled then averaged down
    xx, yy = _grid(size * supersample)
    c, s = np.float32(np.cos(ex.rotation) / ex.scale), np.float32(np.sin(ex.rotation) / ex.scale)
    dx, dy = xx - np.float32(ex.cx), yy - np.float32(ex.cy)
    lx = c * dx + s * dy
    ly = c * dy - s * dx
    mask = _shape_mask(concept.shape, lx, ly).astype(np.float32)
    shade = _texture(concept.texture, lx, ly, ex.texture_freq, ex.texture_phase) * mask
    cover, shade = _downsample(mask, supersample), _downsample(shade, supersample)
    if concept.colour not in RGB:
        raise ValueError(f"unknown colour '{concept.colour}' (known: {', '.join(COLOURS)})")
    colour = np.clip(np.asarray(RGB[concept.colour]) + np.asarray(ex.colour_jitter), 0, 1)
    img = bg[..., None] * (1 - cover[..., None]) + shade[..., None] * colour[None, None, :]
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def render_catch(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A catch image: a black-and-white noise blob pattern unlike any concept (the oddball to detect)."""
    small = rng.random((8, 8))
    img = np.kron(small, np.ones((size // 8, size // 8)))
    img = (img > 0.5).astype(float) * 0.9 + 0.05
    return np.round(np.repeat(img[..., None], 3, axis=2) * 255).astype(np.uint8)


def image_features(img: np.ndarray) -> np.ndarray:
    """Low-level statistics of one rendered image, in the order of ``LOW_LEVEL_FEATURES``."""
    x = img.astype(np.float64) / 255.0
    lum = x @ np.array([0.299, 0.587, 0.114])
    size = lum.shape[0]
    spec = np.abs(np.fft.fftshift(np.fft.fft2(lum - lum.mean()))) ** 2
    f = np.fft.fftshift(np.fft.fftfreq(size))
    fr = np.hypot(*np.meshgrid(f, f))
    high = float(spec[fr > 0.15].sum() / max(spec.sum(), 1e-12))
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    diff = np.abs(x - np.median(border, axis=0)).sum(axis=2)
    obj = diff > 0.25
    w = diff * obj
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    total = max(w.sum(), 1e-12)
    cx = float((w.sum(axis=0) * coords).sum() / total)
    cy = float(-(w.sum(axis=1) * coords).sum() / total)
    means = x.reshape(-1, 3).mean(axis=0)
    return np.array([means[0], means[1], means[2], lum.std(), high, cx, cy, obj.mean()])


def build_stimuli(params: StimulusWorldParams, seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict]:
    """Design the stimulus set: returns the table, the images by image_id and study-level ground truth."""
    p = params.stimuli
    rng = derive_rng(seed, "stimuli")
    train, test = split_concepts(p, rng)
    rows, images = [], {}
    specs = [(c, "train", p.exemplars_per_train_concept) for c in train]
    specs += [(c, "test", p.exemplars_per_test_concept) for c in test]
    for concept, split, n_exp in specs:
        n_img = n_exp + (1 if split == "test" else 0)
        for k in range(1, n_img + 1):
            ex = draw_exemplar(rng)
            image_id = f"{concept.name}_{k:02d}"
            images[image_id] = render_image(concept, ex, p.image_size)
            rows.append(
                {
                    "image_id": image_id,
                    "file": f"{concept.name}/{image_id}.png",
                    "concept": concept.name,
                    "exemplar": k,
                    # the test image has the highest exemplar number, like THINGS-MEG's (>= 13)
                    "role": "test" if split == "test" and k == n_img else "exp",
                    "concept_split": split,
                    "shape": concept.shape,
                    "colour": concept.colour,
                    "texture": concept.texture,
                }
            )
    for k in range(1, p.n_catch_images + 1):
        image_id = f"catch_{k:02d}"
        images[image_id] = render_catch(rng, p.image_size)
        rows.append(
            {
                "image_id": image_id,
                "file": f"catch/{image_id}.png",
                "concept": "catch",
                "exemplar": k,
                "role": "catch",
                "concept_split": "train",
                "shape": None,
                "colour": None,
                "texture": None,
            }
        )
    table = pd.DataFrame(rows)
    table.insert(6, "value", np.arange(1, len(table) + 1))
    feats = np.stack([image_features(images[i]) for i in table.image_id])
    truth = encoding_ground_truth(params, table, feats, seed)
    return table, images, truth


def naka_rushton(c: np.ndarray, c50: np.ndarray) -> np.ndarray:
    """Saturating response ``c^2 / (c^2 + c50^2)`` (Naka-Rushton, exponent 2): 0.5 at ``c = c50``, -> 1."""
    c50 = np.asarray(c50, dtype=float)
    if np.any(c50 <= 0):
        raise ValueError(f"Naka-Rushton c50 must be > 0, got {c50.tolist()}")
    c2 = np.square(np.asarray(c, dtype=float))
    return c2 / (c2 + np.square(c50))


def naka_rushton_truth(feats: np.ndarray) -> dict:
    """Nonlinear world's early coding from the shown images' statistics (n_images, n_features):
    offsets, c50 (median of each offset statistic) and the mean/SD used to standardise the responses."""
    offset = np.array([NAKA_RUSHTON_OFFSET.get(f, 0.0) for f in LOW_LEVEL_FEATURES])
    c = feats + offset
    if np.any(c < 0):
        bad = [f for f, m in zip(LOW_LEVEL_FEATURES, c.min(axis=0), strict=True) if m < 0]
        raise ValueError(f"Naka-Rushton input must be >= 0; negative statistic(s): {bad}")
    c50 = np.median(c, axis=0).round(8)
    r = naka_rushton(c, c50)
    return {
        "description": "r = c^2 / (c^2 + c50^2) with c = statistic + offset, c50 = median of c over the "
        "shown images; the early code is (r - response_mean) / response_std",
        "exponent": 2,
        "offset": offset.tolist(),
        "c50": c50.tolist(),
        "response_mean": r.mean(axis=0).round(8).tolist(),
        "response_std": (r.std(axis=0) + 1e-9).round(8).tolist(),
    }


def early_code(truth: dict, image_id: str) -> np.ndarray:
    """The per-feature code an image's statistics give the early weights: z-scores (linear world) or
    standardised Naka-Rushton responses (nonlinear world with ``naka_rushton``)."""
    return features_early_code(truth, np.asarray(truth["image_features"][image_id]))


def features_early_code(truth: dict, feats: np.ndarray) -> np.ndarray:
    """:func:`early_code` of low-level statistics (..., n_features) in the order of ``LOW_LEVEL_FEATURES``
    (of any image, also one the study never showed)."""
    nr = truth["components"]["early"].get("naka_rushton")
    if nr is None:
        return (feats - np.asarray(truth["feature_mean"])) / np.asarray(truth["feature_std"])
    r = naka_rushton(feats + np.asarray(nr["offset"]), np.asarray(nr["c50"]))
    return (r - np.asarray(nr["response_mean"])) / np.asarray(nr["response_std"])


def conjunctive_codes(
    p: StimulusParams, table: pd.DataFrame, n_codes: int, seed: int
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """Nonlinear world's late codes: one random pattern per (shape, colour) pair (all pairs of the config) and
    one per concept of the study; each entry has variance 1/2, so their sum has the linear codes' variance."""
    rng = derive_rng(seed, "encoding", "conjunctive")
    scale = CONJUNCTIVE_CODE_SD
    pairs = {
        s: {c: (rng.standard_normal(n_codes) * scale).round(6).tolist() for c in p.colours} for s in p.shapes
    }
    concepts = sorted(table.loc[table.role != "catch", "concept"].unique())
    return pairs, {c: (rng.standard_normal(n_codes) * scale).round(6).tolist() for c in concepts}


def late_code(truth: dict, concept: str | None, attrs: dict[str, str]) -> np.ndarray:
    """A concept's late code: sum of per-attribute codes (linear world) or (shape, colour) pair + concept
    pattern (nonlinear world with ``conjunctive_codes``)."""
    late = truth["components"]["late"]
    if "pair_codes" in late:
        if concept is None:
            raise ValueError("conjunctive late codes (nonlinear world) need the trial's concept")
        return np.asarray(late["pair_codes"][attrs["shape"]][attrs["colour"]]) + np.asarray(
            late["concept_codes"][concept]
        )
    return sum(np.asarray(late["attribute_codes"][a][v]) for a, v in attrs.items())


def encoding_ground_truth(
    params: StimulusWorldParams, table: pd.DataFrame, feats: np.ndarray, seed: int
) -> dict:
    """Study-level ground truth: which features drive which component, with the encoding weights.

    The linear world's file is exactly what it was before worlds existed (no ``world`` key); the nonlinear
    world's adds ``world``, its parameters and the Naka-Rushton c50 / conjunctive codes it uses."""
    rng = derive_rng(seed, "encoding")
    p = params.stimuli
    shown = (table.role != "catch").to_numpy()
    mu, sd = feats[shown].mean(axis=0), feats[shown].std(axis=0) + 1e-9
    early, late = params.early, params.late
    n_early_codes = early.n_dipoles * len(early.latencies)
    n_late_codes = late.n_dipoles * len(late.latencies)
    w_early = rng.standard_normal((n_early_codes, len(LOW_LEVEL_FEATURES))) / np.sqrt(len(LOW_LEVEL_FEATURES))
    attr_codes = {
        a: {v: (rng.standard_normal(n_late_codes) / np.sqrt(len(ATTRIBUTES))).round(6).tolist() for v in vals}
        for a, vals in zip(ATTRIBUTES, (p.shapes, p.colours, p.textures), strict=True)
    }
    truth = {
        "seed": seed,
        "trigger_codes": dict(params.trigger_codes),
        "components": {
            "evoked": {
                "description": "image-independent response of the early dipoles (same for every trial)",
                "latencies_s": list(early.latencies),
                "amplitude_nam": params.evoked_nam,
            },
            "early": {
                "description": "low-level statistics of the rendered image (z-scored) -> early dipoles",
                "features": list(LOW_LEVEL_FEATURES),
                "latencies_s": list(early.latencies),
                "width_s": early.width,
                "amplitude_nam": early.amplitude_nam,
                "n_dipoles": early.n_dipoles,
                "region": "occipital",
                "weights": w_early.round(6).tolist(),
            },
            "late": {
                "description": "sum of one code per attribute value (compositional) -> late dipoles",
                "features": list(ATTRIBUTES),
                "latencies_s": list(late.latencies),
                "width_s": late.width,
                "amplitude_nam": late.amplitude_nam,
                "n_dipoles": late.n_dipoles,
                "region": "occipito-temporal",
                "attribute_codes": attr_codes,
            },
        },
        "trial_variability": {"latency_jitter_sd_s": params.latency_jitter_sd, "gain_sd_log": params.gain_sd},
        "feature_mean": mu.round(8).tolist(),
        "feature_std": sd.round(8).tolist(),
        "image_features": {i: f.round(6).tolist() for i, f in zip(table.image_id, feats, strict=True)},
    }
    if params.is_nonlinear:
        _make_nonlinear(truth, params, table, feats[shown].round(6), seed)
    return truth


def _make_nonlinear(
    truth: dict, params: StimulusWorldParams, table: pd.DataFrame, shown_feats: np.ndarray, seed: int
) -> None:
    """Turn the linear world's ground truth into the nonlinear world's (in place)."""
    nl = params.nonlinear
    comps = truth["components"]
    truth["world"] = "nonlinear"
    truth["nonlinear"] = dataclasses.asdict(nl)
    truth["trial_variability"] = {
        "early_latency_jitter_sd_s": nl.early_jitter_sd,
        "late_latency_jitter_sd_s": nl.late_jitter_sd,
        "latency_jitter": "one Gaussian shift per trial for the early component, one per late latency",
        "gain_sd_log": nl.gain_sd,
    }
    if nl.naka_rushton:
        # from the statistics as stored (rounded), so that the subject job recomputes the same codes
        comps["early"]["naka_rushton"] = naka_rushton_truth(shown_feats)
        comps["early"]["description"] = (
            "Naka-Rushton function of each low-level statistic (c50 at its median over the shown images), "
            "standardised -> early dipoles"
        )
    if nl.conjunctive_codes:
        late = comps["late"]
        del late["attribute_codes"]
        n_codes = params.late.n_dipoles * len(params.late.latencies)
        late["pair_codes"], late["concept_codes"] = conjunctive_codes(params.stimuli, table, n_codes, seed)
        late["features"] = ["shape x colour", "concept"]
        late["description"] = (
            "conjunctive: one code per (shape, colour) pair plus one per concept (pair_codes[shape][colour] "
            "+ concept_codes[concept]) -> late dipoles"
        )


def simulate_stimuli(
    table_path: Path | str,
    images_dir: Path | str,
    ground_truth_path: Path | str,
    cfg: dict,
    seed: int,
) -> pd.DataFrame:
    """Render every stimulus image and write stimuli.tsv and the study-level ground_truth.json."""
    params = StimulusWorldParams.from_config(cfg)
    table, images, truth = build_stimuli(params, seed)
    images_dir = Path(images_dir)
    with atomic_output(images_dir) as tmp:
        for row in tqdm(table.itertuples(), total=len(table), desc="images", mininterval=2):
            path = tmp / row.file
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[row.image_id]).save(path, format="PNG", compress_level=1)
        write_image_checksums(tmp)
    write_ground_truth(truth, ground_truth_path)
    write_stimuli(table, table_path)
    shown = table[table.role != "catch"]
    log.info(
        "%d images (%s), %d train / %d test concepts",
        len(table),
        table.role.value_counts().to_dict(),
        shown.loc[shown.concept_split == "train", "concept"].nunique(),
        shown.loc[shown.concept_split == "test", "concept"].nunique(),
    )
    return table
