"""The one seed-derivation rule (megdecode.seeds), on known answers."""

from __future__ import annotations

import zlib

import numpy as np

from megdecode.seeds import derive_rng, derive_seed, seed_sequence


def test_labels_are_crc32_and_ints_stay_ints() -> None:
    assert seed_sequence(0, "hog", 3).entropy == [0, zlib.crc32(b"hog"), 3]
    assert seed_sequence(np.int64(7), "01").entropy == seed_sequence(7, "01").entropy
    assert seed_sequence(1).entropy != seed_sequence("1").entropy  # the text "1" is a label, not the int


def test_rng_is_numpys_default_rng_of_the_sequence() -> None:
    expected = np.random.default_rng([0, zlib.crc32(b"x"), zlib.crc32(b"01")]).random(4)
    np.testing.assert_array_equal(derive_rng(0, "x", "01").random(4), expected)


def test_seed_is_stable_63_bit_and_label_dependent() -> None:
    # the same numbers on every machine and in every process (a changed value changes every result)
    assert derive_seed(0, "decoder", "hog") == 4400763274081830049
    assert derive_seed(0, 1, "a", "01") == 2248114223437732364
    assert (
        derive_seed(0, "decoder", "hog")
        != derive_seed(0, "decoder", "pixels")
        != derive_seed(1, "decoder", "pixels")
    )
    assert all(0 <= derive_seed(s, "x") < 2**63 for s in range(20))
