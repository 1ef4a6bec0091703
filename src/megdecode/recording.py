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
    """A recording whose bytes end early or do not parse; the message names the file and the fix: re-copy it
    from its source, or, for a file this workflow wrote (``written_by`` its rule), delete it and rerun."""

    def __init__(self, path: Path | str, detail: str, written_by: str | None = None) -> None:
        self.path, self.detail, self.written_by = path, detail, written_by
        super().__init__(corrupt_message(path, detail, written_by))


class MisnamedRecordingError(ValueError):
    """A CTF ``.ds`` folder whose files do not carry the folder's name; the message says how to rename."""


def corrupt_message(path: Path | str, detail: str, written_by: str | None = None) -> str:
    if written_by is not None:  # a plain rerun would find the file up to date and fail again
        return (
            f"recording {path} is truncated or corrupt ({detail}); the {written_by} job wrote it: delete "
            f"{path} and run the same snakemake command again, which writes it anew"
        )
    return (
        f"recording {path} is truncated or corrupt ({detail}); re-copy it from its source (for example "
        "compare its size or checksum with the original and download or copy it again), then rerun"
    )


def read_raw_checked(path: Path | str, written_by: str | None = None, **kwargs):
    """``mne.io.read_raw(path, preload=False)`` that raises :class:`CorruptRecordingError` for a damaged file.

    ``written_by``: the rule of this workflow that wrote the file (its fix is then: delete it and rerun).
    Other reader errors propagate unchanged.
    """
    try:
        return _read_raw_checked(Path(path), **kwargs)
    except CorruptRecordingError as err:
        if written_by is None:
            raise
        raise CorruptRecordingError(err.path, err.detail, written_by) from err


def _read_raw_checked(path: Path, **kwargs):
    import mne

    if path.suffix == ".ds" and path.is_dir():
        check_ctf_complete(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = mne.io.read_raw(path, preload=False, verbose="warning", **kwargs)
        except ValueError as err:
            if "buffer size" in str(err) or any(_is_corrupt(w) for w in caught):
                raise CorruptRecordingError(path, str(err)) from err
            raise
    bad = [str(w.message) for w in caught if _is_corrupt(w)]
    if bad:
        raise CorruptRecordingError(path, bad[0])
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
                raise CorruptRecordingError(fname, f"its data buffers need {end} bytes, the file has {size}")


#: bytes before the samples in every CTF ``.meg4`` / ``.N_meg4`` file
CTF_MEG4_HEADER = 8


def check_ctf_complete(ds: Path | str) -> None:
    """Check a CTF ``.ds`` folder before MNE reads it.

    - Its header and data files must carry the folder's stem (``<stem>.res4``, ``<stem>.meg4``): a folder
      copied under a BIDS name without renaming them is reported with the rename to do.
    - The data files must hold whole trials, as many as the header's trial count. CTF writes the real count
      when it saves a dataset; MNE opens a ``.meg4`` cut at a trial boundary without a word (a 2-trial
      recording reads as 1 s), and one cut mid-trial only with "not an even multiple of the trial size".
    """
    ds = Path(ds)
    stem = ds.name[: -len(".ds")]
    res4 = ds / f"{stem}.res4"
    if not res4.is_file():
        others = sorted(p.name for p in ds.glob("*.res4") if not p.name.startswith("._"))
        held = f"it holds {', '.join(others)}" if others else "it holds no .res4 header at all"
        raise MisnamedRecordingError(
            f"CTF folder {ds} has no header {res4.name} ({held}): the files inside a .ds folder must carry "
            f"the folder's name; rename them with the folder (e.g. {others[0] if others else 'x.res4'} -> "
            f"{res4.name}, and the same for .meg4, .infods, .acq, .hc, .newds), or convert the recording "
            "with mne_bids.write_raw_bids, which renames them"
        )
    from mne.utils import use_log_level

    try:
        from mne.io.ctf.res4 import _read_res4
    except ImportError:  # a future MNE moved its private reader: leave the checks to MNE
        return
    with use_log_level("error"):
        header = _read_res4(str(ds))
    n_samp, n_chan, n_trials = int(header["nsamp"]), int(header["nchan"]), int(header["no_trials"])
    trial_bytes = 4 * n_samp * n_chan
    data = [ds / f"{stem}.meg4"]
    while (nxt := ds / f"{stem}.{len(data)}_meg4").is_file():
        data.append(nxt)
    if not data[0].is_file():
        raise MisnamedRecordingError(
            f"CTF folder {ds} has no data file {data[0].name}: copy the whole .ds folder from its source"
        )
    found = 0
    for f in data:
        body = f.stat().st_size - CTF_MEG4_HEADER
        whole, rest = divmod(max(body, 0), trial_bytes)
        if body < 0 or rest:
            raise CorruptRecordingError(
                f, f"its {max(body, 0)} data bytes are not whole trials of {trial_bytes} bytes "
                f"({n_samp} samples x {n_chan} channels); the header {res4.name} promises {n_trials} trials"
            )  # fmt: skip
        found += whole
    if n_trials > 0 and found != n_trials:
        names = ", ".join(str(f) for f in data)
        raise CorruptRecordingError(
            names, f"the header {res4.name} promises {n_trials} trials of {n_samp} samples, the data "
            f"file(s) hold {found} ({found * n_samp} of {n_trials * n_samp} samples)"
        )  # fmt: skip


def _is_corrupt(w: warnings.WarningMessage) -> bool:
    text = str(w.message).lower()
    return any(h in text for h in _CORRUPT_HINTS)
