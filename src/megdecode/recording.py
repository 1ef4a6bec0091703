"""Open MEG recordings with MNE and say plainly when a file is truncated or corrupt.

MNE opens a FIF cut short without an error (it only warns, and ``verbose="error"`` hides that) and fails
later with ``buffer size must be a multiple of element size``, or reports fewer samples so that events seem
to lie outside the recording. :func:`read_raw_checked` checks the file against its own directory first.
"""

from __future__ import annotations

import warnings
from pathlib import Path

# MNE's own warnings that mean the bytes on disk are not what the file's directory promises
_CORRUPT_HINTS = ("invalid tag", "truncated", "file is corrupt", "unexpected end")


class CorruptRecordingError(ValueError):
    """A recording whose bytes end early or do not parse; the message names the file and says re-copy it."""


def corrupt_message(path: Path | str, detail: str) -> str:
    return (
        f"recording {path} is truncated or corrupt ({detail}); re-copy it from its source (for example "
        "compare its size or checksum with the original and download or copy it again), then rerun"
    )


def read_raw_checked(path: Path | str, **kwargs):
    """``mne.io.read_raw(path, preload=False)`` that raises :class:`CorruptRecordingError` for a damaged file.

    Other reader errors propagate unchanged.
    """
    import mne

    path = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = mne.io.read_raw(path, preload=False, verbose="warning", **kwargs)
        except ValueError as err:
            if "buffer size" in str(err) or any(_is_corrupt(w) for w in caught):
                raise CorruptRecordingError(corrupt_message(path, str(err))) from err
            raise
    bad = [str(w.message) for w in caught if _is_corrupt(w)]
    if bad:
        raise CorruptRecordingError(corrupt_message(path, bad[0]))
    check_fif_complete(raw)
    return raw


def check_fif_complete(raw) -> None:
    """Raise when a FIF's data buffers (from its directory) run past the end of the file."""
    for extra in getattr(raw, "_raw_extras", []) or []:
        if not isinstance(extra, dict) or "ent" not in extra or not extra.get("filename"):
            continue
        fname = Path(extra["filename"])
        size = fname.stat().st_size
        for tag in extra["ent"] or []:
            end = int(tag.pos) + 16 + int(tag.size)  # 16-byte tag header, then the data
            if end > size:
                raise CorruptRecordingError(
                    corrupt_message(fname, f"its data buffers need {end} bytes, the file has {size}")
                )


def _is_corrupt(w: warnings.WarningMessage) -> bool:
    text = str(w.message).lower()
    return any(h in text for h in _CORRUPT_HINTS)
