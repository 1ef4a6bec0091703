"""Helpers of rules/train.smk (kept out of the Snakefile so the rules stay declarative)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SUBJECT_FILES = (
    ("meg", "meg.npy"),
    ("trials", "trials.tsv"),
    ("channels", "channels.tsv"),
    ("info", "info.json"),
)


def chosen_backbones(all_names: Iterable[str], chosen: Sequence[str] | None, section: str) -> list[str]:
    """The backbones a section trains on: ``chosen`` (checked against ``backbones``) or all of them."""
    names = list(all_names)
    if chosen is None:
        return names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise ValueError(
            f"config {section}.backbones names {unknown}, not in `backbones` ({names}); fix the config"
        )
    return list(chosen)


def subject_inputs(preprocessed: str, subjects: Iterable[str]) -> dict[str, str]:
    """Named inputs ``meg_<subject>``, ``trials_<subject>``, ... (preprocessed files of ``subjects``)."""
    return {
        f"{kind}_{subject}": f"{preprocessed.format(subject=subject)}/{name}"
        for subject in subjects
        for kind, name in SUBJECT_FILES
    }


def training_inputs(
    preprocessed: str, latents: str, subjects: Iterable[str], backbone: str
) -> dict[str, str]:
    """Inputs of a training job: the subjects' preprocessed files and the backbone's latents."""
    base = latents.format(backbone=backbone)
    return {
        **subject_inputs(preprocessed, subjects),
        "latents": f"{base}/latents.npy",
        "index": f"{base}/index.tsv",
    }


def job_mem_mb(input_size_mb: float, base: int = 2000) -> int:
    """Memory request: a base for the interpreter and model plus half the (memory-mapped) inputs."""
    return int(base + 0.5 * input_size_mb)
