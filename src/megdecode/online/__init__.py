"""Online decoding: trials decoded while they are recorded, from a replay or a live stream."""
