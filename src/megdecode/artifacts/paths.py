"""Every path pattern of the results tree, in one place: the rules and the package both read them here.

Patterns keep Snakemake wildcards (``{subject}``, ``{backbone}``, ``{seed}``, ``{window}``, ``{model}``,
``{generator}``) for ``str.format`` or ``expand``. BIDS paths are built with ``mne_bids.BIDSPath``
(:mod:`megdecode.bids_layout`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# models whose predictions.npz the evaluation reads, and where each is written (relative to ``models``)
PREDICTIONS = {
    "brain": "brain/{backbone}/sub-{subject}/seed-{seed}/predictions.npz",
    "brain_shared": "brain_shared/{backbone}/seed-{seed}/predictions_sub-{subject}.npz",
    "brain_window": "brain_window/{backbone}/sub-{subject}/{window}/predictions.npz",
    "ridge": "ridge/{backbone}/sub-{subject}/predictions.npz",
}
# fMRI decoders (relative to ``fmri_models``): linear ridge and the small MLP trained with CLIP + MSE
FMRI_PREDICTIONS = {
    "ridge": "ridge/{backbone}/sub-{subject}/predictions.npz",
    "mlp": "mlp/{backbone}/sub-{subject}/predictions.npz",
}


@dataclass(frozen=True)
class Layout:
    """The results tree of one config (``results_dir`` and, for a real study, its BIDS and stimuli roots)."""

    results: str
    bids_root: str
    stimuli_images: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Layout:
        study, results = config["study"], config["results_dir"]
        simulated = study["source"] == "simulated"
        own_images = simulated or study["source"] == "nsd"  # NSD's images are exported from its HDF5 file
        return cls(
            results=results,
            bids_root=f"{results}/bids" if simulated else study["bids_root"],
            stimuli_images=f"{results}/stimuli/images" if own_images else study["stimuli_root"],
        )

    # ---- stages, in workflow order
    @property
    def stimuli_table(self) -> str:
        return f"{self.results}/stimuli/stimuli.tsv"

    @property
    def sourcedata(self) -> str:
        return f"{self.results}/sourcedata"

    @property
    def ground_truth(self) -> str:
        return f"{self.sourcedata}/ground_truth.json"

    @property
    def bids_inventory(self) -> str:
        return f"{self.results}/bids_check/inventory.tsv"

    @property
    def derivatives(self) -> str:
        return f"{self.results}/derivatives/megdecode"

    @property
    def qc(self) -> str:
        return f"{self.results}/qc"

    @property
    def preprocessed(self) -> str:
        return f"{self.results}/preprocessed/sub-{{subject}}"

    @property
    def latents(self) -> str:
        return f"{self.results}/latents/{{backbone}}"

    @property
    def pretrained(self) -> str:
        return f"{self.results}/pretrained/{{backbone}}"

    @property
    def models(self) -> str:
        return f"{self.results}/models"

    def predictions(self, model: str) -> str:
        """``predictions.npz`` pattern of ``brain``, ``brain_shared``, ``brain_window`` or ``ridge``."""
        return f"{self.models}/{PREDICTIONS[model]}"

    def model_dir(self, model: str) -> str:
        """The folder of one trained model (its weights, history and predictions)."""
        return self.predictions(model).rsplit("/", 1)[0]

    def checkpoint(self, model: str) -> str:
        """Resumable training state, outside the declared outputs (a killed job resumes from it)."""
        relative = self.model_dir(model).removeprefix(self.models)
        return f"{self.results}/checkpoints{relative}/last.pt"

    @property
    def evaluation(self) -> str:
        return f"{self.results}/evaluation"

    @property
    def retrieval_table(self) -> str:
        return f"{self.evaluation}/retrieval/{{model}}/{{backbone}}/sub-{{subject}}.tsv"

    @property
    def timeresolved_table(self) -> str:
        return f"{self.evaluation}/timeresolved/{{backbone}}/sub-{{subject}}.tsv"

    @property
    def generators(self) -> str:
        return f"{self.results}/generators"

    @property
    def decoder_generator(self) -> str:
        return f"{self.generators}/decoder/{{backbone}}"

    @property
    def reconstruction(self) -> str:
        return f"{self.results}/reconstruction"

    @property
    def reconstruction_subject(self) -> str:
        return f"{self.reconstruction}/{{generator}}/sub-{{subject}}"

    @property
    def attribute_readout(self) -> str:
        """The attribute readout scoring MEG and fMRI reconstructions (:mod:`~.attribute_readout`)."""
        return f"{self.reconstruction}/attribute_readout"

    @property
    def realtime(self) -> str:
        """The online replay of one (backbone, subject, seed): per-trial TSV, summary, figure."""
        return f"{self.results}/realtime/{{backbone}}/sub-{{subject}}/seed-{{seed}}"

    @property
    def tables(self) -> str:
        return f"{self.results}/tables"

    @property
    def figures(self) -> str:
        return f"{self.results}/figures"

    # ---- the fMRI modality (megdecode.artifacts.fmri): its own subtree, sharing stimuli and latents
    @property
    def fmri(self) -> str:
        return f"{self.results}/fmri"

    @property
    def fmri_subject(self) -> str:
        """One subject's single-trial betas, trials and voxels (:mod:`megdecode.artifacts.fmri`)."""
        return f"{self.fmri}/subjects/sub-{{subject}}"

    @property
    def fmri_ground_truth(self) -> str:
        """What generated one simulated subject's betas (pRFs, tuning mixture, SNRs)."""
        return f"{self.fmri}/ground_truth/sub-{{subject}}.json"

    def fmri_predictions(self, model: str) -> str:
        """``predictions.npz`` pattern of an fMRI decoder (``ridge`` or ``mlp``)."""
        return f"{self.fmri}/models/{FMRI_PREDICTIONS[model]}"

    @property
    def fmri_reconstruction_subject(self) -> str:
        """One fMRI subject's reconstructions and their metrics (the MEG stage's files, fMRI predictions)."""
        return f"{self.fmri}/reconstruction/{{generator}}/sub-{{subject}}"

    @property
    def fmri_retrieval_table(self) -> str:
        return f"{self.fmri}/evaluation/retrieval/{{model}}/{{backbone}}/sub-{{subject}}.tsv"

    @property
    def fmri_ceiling_table(self) -> str:
        """The simulated study's fMRI ceiling (:mod:`megdecode.evaluation.fmri_ceiling`), retrieval format."""
        return f"{self.fmri}/evaluation/ceiling/sub-{{subject}}.tsv"

    @property
    def logs(self) -> str:
        return f"{self.results}/logs"

    @property
    def benchmarks(self) -> str:
        return f"{self.results}/benchmarks"

    # ---- the learning-curve experiment (target ``learning_curve``, not part of ``all``)
    @property
    def learning_curve(self) -> str:
        return f"{self.results}/learning_curve"

    @property
    def learning_curve_scores(self) -> str:
        """Per-item retrieval scores of one job (:mod:`megdecode.artifacts.learning_curve`)."""
        return f"{self.learning_curve}/{{world}}/sub-{{subject}}_seed-{{seed}}_n-{{n_train}}_scores.tsv"

    @property
    def learning_curve_trials(self) -> str:
        """The generating variables of every trial of one job (image, role, gain, latency shifts)."""
        return f"{self.learning_curve}/{{world}}/sub-{{subject}}_seed-{{seed}}_n-{{n_train}}_trials.tsv"

    # the fMRI curve (learning_curve.modalities with fmri): its own folder, no world
    @property
    def learning_curve_fmri_scores(self) -> str:
        """Per-item retrieval scores of one fMRI job (:mod:`megdecode.artifacts.learning_curve`)."""
        return f"{self.learning_curve}/fmri/sub-{{subject}}_seed-{{seed}}_n-{{n_train}}_scores.tsv"

    @property
    def learning_curve_fmri_trials(self) -> str:
        """The design of one fMRI job's trials (image, role, session)."""
        return f"{self.learning_curve}/fmri/sub-{{subject}}_seed-{{seed}}_n-{{n_train}}_trials.tsv"

    @property
    def learning_curve_fmri_voxels(self) -> str:
        """One simulated fMRI subject's noiseless voxel code for every image the curve can show."""
        return f"{self.learning_curve}/fmri/sub-{{subject}}_voxels.npz"

    @property
    def learning_curve_fmri_truth(self) -> str:
        """The ground truth of that code (pRFs, attribute read-out, SNRs, parameters)."""
        return f"{self.learning_curve}/fmri/sub-{{subject}}_truth.json"

    def learning_curve_summary(self, name: str) -> str:
        """One of the experiment's summary files (``summary.tsv``, ``paired.tsv``, ``slopes.tsv``,
        ``learning_curve.md``, ``learning_curve.png`` / ``.pdf``)."""
        return f"{self.learning_curve}/{name}"
