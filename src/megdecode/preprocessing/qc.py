"""Per-subject QC report (mne.Report): counts, dropped channels, PSD before/after, evoked response."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from megdecode.io import atomic_output, load_npz, read_tsv

log = logging.getLogger(__name__)


def peak_times(gfp: np.ndarray, times: np.ndarray, n: int = 3, min_gap: float = 0.05) -> list[float]:
    """Times of the ``n`` largest post-stimulus values of a global field power curve, ``min_gap`` apart."""
    post = np.flatnonzero(times > 0)
    order = post[np.argsort(gfp[post])[::-1]]
    chosen: list[float] = []
    for i in order:
        if all(abs(times[i] - t) >= min_gap for t in chosen):
            chosen.append(float(times[i]))
        if len(chosen) == n:
            break
    return sorted(chosen)


def mean_psd(paths: Sequence[Path | str], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Channel-averaged PSD over the runs that have one (skipped runs store none)."""
    freqs, curves = None, []
    for path in paths:
        arrays = load_npz(path)
        if arrays[f"psd_{key}"].size:
            freqs = arrays[f"freqs_{key}"]
            curves.append(arrays[f"psd_{key}"].mean(axis=0))
    if not curves:
        return None
    return freqs, np.mean(curves, axis=0)


def build_report(
    epochs_paths: Sequence[Path | str],
    psd_paths: Sequence[Path | str],
    runs_path: Path | str,
    subject: str,
    out_html: Path | str,
) -> None:
    """Write the subject's report: runs table, dropped channels, PSDs, evoked butterfly + topomaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mne

    runs = read_tsv(runs_path, dtype={"session": str, "run": str})
    report = mne.Report(title=f"Preprocessing QC, sub-{subject}", verbose="error")
    cols = [
        "session",
        "run",
        "status",
        "n_events",
        "n_exp",
        "n_test",
        "n_catch",
        "n_channels_kept",
        "warnings",
    ]
    report.add_html(
        runs[[c for c in cols if c in runs]].to_html(index=False, na_rep=""), title="Runs and epoch counts"
    )
    dropped = runs[["session", "run", "dropped_channels", "bad_channels_not_found", "problem"]]
    report.add_html(dropped.to_html(index=False, na_rep=""), title="Dropped channels and problems")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (("raw", "before (raw)"), ("clean", "after (band-pass, decimated)")):
        curve = mean_psd(psd_paths, key)
        if curve is not None:
            ax.semilogy(curve[0][1:], curve[1][1:], label=label)
    ax.set(xlabel="frequency (Hz)", ylabel="PSD (T²/Hz, channel mean)", title="Power spectra")
    ax.legend()
    fig.tight_layout()
    report.add_figure(fig, title="PSD before/after filtering")
    plt.close(fig)

    evokeds = []
    for path in epochs_paths:
        ep = mne.read_epochs(path, preload=True, verbose="error")
        if len(ep):
            images = ep[[t != "catch" for t in ep.metadata["trial_type"]]]
            if len(images):
                evokeds.append(images.average())
    if evokeds:
        evoked = mne.combine_evoked(evokeds, weights="nave")
        fig = evoked.plot(show=False, spatial_colors=False, time_unit="s", verbose="error")
        report.add_figure(fig, title=f"Evoked response, image trials (butterfly, n={evoked.nave})")
        plt.close(fig)
        gfp = evoked.data.std(axis=0)
        times = peak_times(gfp, evoked.times)
        if times:
            fig = evoked.plot_topomap(times=times, show=False, time_unit="s")
            report.add_figure(fig, title="Topomaps at the global field power peaks")
            plt.close(fig)
    else:
        report.add_html("<p>No usable run: every run was skipped.</p>", title="Evoked response")
    with atomic_output(out_html) as tmp:
        report.save(tmp, overwrite=True, open_browser=False, verbose="error")
