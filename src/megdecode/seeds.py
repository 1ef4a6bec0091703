"""The one seed-derivation rule: a master seed plus labels (wildcards, purposes) -> a stable seed or RNG.

Integers are used as they are, every other label by the CRC-32 of its text; numpy's ``SeedSequence``
mixes them. Same parts, same numbers, on any machine and in any process.
"""

from __future__ import annotations

import zlib

import numpy as np


def seed_sequence(*parts: object) -> np.random.SeedSequence:
    """The ``SeedSequence`` of ``parts`` (ints as they are, anything else by the CRC-32 of its text)."""
    return np.random.SeedSequence(
        [int(p) if isinstance(p, int | np.integer) else zlib.crc32(str(p).encode()) for p in parts]
    )


def derive_seed(*parts: object) -> int:
    """A 63-bit integer seed (for torch generators and libraries that take an int)."""
    return int(seed_sequence(*parts).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def derive_rng(*parts: object) -> np.random.Generator:
    """A numpy generator seeded from ``parts`` (no global state)."""
    return np.random.default_rng(seed_sequence(*parts))
