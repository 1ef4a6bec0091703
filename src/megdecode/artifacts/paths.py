"""Every path of the workflow, in one place: the rules and the package both read them here.

Patterns keep Snakemake wildcards (``{subject}``, ``{session}``, ``{run}``, ``{backbone}``, ``{seed}``,
``{window}``, ``{model}``, ``{generator}``) for ``str.format`` or ``expand``. BIDS paths (the BIDS tree, the
simulated sourcedata and the derivatives, which follow BIDS naming) are built with ``mne_bids.BIDSPath``
(:func:`bids_path`); every job's log and benchmark file with :meth:`Layout.log` and :meth:`Layout.benchmark`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mne_bids import BIDSPath

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
#: the other files of a model's folder (beside its predictions), by kind
MODEL_FILES = {"weights": "model.safetensors", "history": "history.tsv", "coefficients": "model.npz"}
#: one BIDS run's own files (what the bids_run job writes): BIDS suffix and extension
BIDS_RUN_FILES = {
    "raw": ("meg", ".fif"),
    "sidecar": ("meg", ".json"),
    "channels": ("channels", ".tsv"),
    "events": ("events", ".tsv"),
}
#: the simulated lab's files of one run (rules/simulate.smk), BIDS-named in ``sourcedata/``
SOURCE_RUN_FILES = {"raw": ("raw", ".fif"), "log": ("log", ".tsv")}
#: the per-run files of the preprocess_run job beside the epochs: QC row and power spectra
QC_RUN_FILES = {"qc": ("qc", ".tsv"), "psd": ("psd", ".npz")}


# --- BIDS (mne-bids): labels may be Snakemake wildcards, so entity values are not checked here


def bids_path(root: Path | str | None, subject: str, session: str | None = None, **entities: Any) -> BIDSPath:
    """A ``BIDSPath`` (``check=False``: labels may be wildcards such as ``{subject}``)."""
    from mne_bids import BIDSPath

    return BIDSPath(root=root, subject=subject, session=session, check=False, **entities)


def bids_run_path(root: Path | str | None, subject: str, session: str, run: str, task: str) -> BIDSPath:
    """The ``BIDSPath`` of one MEG run, without suffix and extension."""
    return bids_path(root, subject, session, task=task, run=run, datatype="meg")


def run_stem(subject: str, session: str, run: str, task: str) -> str:
    """ds004212 file stem of one run: ``sub-X_ses-Y_task-T_run-Z``."""
    return bids_run_path(None, subject, session, run, task).basename


def bids_meg_dir(root: Path | str, subject: str, session: str) -> Path:
    """The ``meg`` folder of one session."""
    return Path(bids_path(root, subject, session, datatype="meg").directory)


def bids_run_file(
    root: Path | str, subject: str, session: str, run: str, task: str, suffix: str, extension: str
) -> str:
    """One file of one run (e.g. suffix ``events``, extension ``.tsv``)."""
    path = bids_run_path(root, subject, session, run, task).update(suffix=suffix, extension=extension)
    return str(path.fpath)


def bids_run_files(root: Path | str, subject: str, session: str, run: str, task: str) -> dict[str, str]:
    """The run's own files (:data:`BIDS_RUN_FILES`: raw, sidecar, channels, events)."""
    return {
        key: bids_run_file(root, subject, session, run, task, suffix, ext)
        for key, (suffix, ext) in BIDS_RUN_FILES.items()
    }


def bids_session_files(root: Path | str, subject: str, session: str) -> dict[str, str]:
    """The per-session files of the dataset job: ``scans`` and ``coordsystem``."""
    scans = bids_path(root, subject, session, suffix="scans", extension=".tsv")
    coords = bids_path(root, subject, session, datatype="meg", suffix="coordsystem", extension=".json")
    return {"scans": str(scans.fpath), "coordsystem": str(coords.fpath)}


def bids_dataset_files(root: Path | str, task: str) -> dict[str, str]:
    """The dataset-level files of the dataset job."""
    return {
        "description": f"{root}/dataset_description.json",
        "participants": f"{root}/participants.tsv",
        "participants_json": f"{root}/participants.json",
        "readme": f"{root}/README",
        "events_json": f"{root}/task-{task}_events.json",
    }


#: one EEG recording's own files in BIDS (THINGS-EEG2 through megdecode.bids_eeg): suffix and extension
BIDS_EEG_FILES = {
    "raw": ("eeg", ".vhdr"),
    "sidecar": ("eeg", ".json"),
    "channels": ("channels", ".tsv"),
    "events": ("events", ".tsv"),
}


def bids_eeg_path(root: Path | str | None, subject: str, session: str, task: str) -> BIDSPath:
    """The ``BIDSPath`` of one EEG recording (one partition of one session), without suffix and extension."""
    return bids_path(root, subject, session, task=task, datatype="eeg")


def bids_eeg_files(root: Path | str, subject: str, session: str, task: str) -> dict[str, str]:
    """One EEG recording's own files (:data:`BIDS_EEG_FILES`)."""
    base = bids_eeg_path(root, subject, session, task)
    return {
        key: str(base.copy().update(suffix=suffix, extension=ext).fpath)
        for key, (suffix, ext) in BIDS_EEG_FILES.items()
    }


def bids_input_files(
    root: Path | str, subject: str, session: str, run: str, task: str, simulated: bool
) -> dict[str, str]:
    """``{'raw', 'events'}`` a later stage reads of one run.

    ``_meg.fif`` when converted from a simulation; else the CTF ``_meg.ds``, or a ``_meg.fif`` standing in
    for it when only that exists (a dataset converted to FIF).
    """
    files = bids_run_files(root, subject, session, run, task)
    raw = files["raw"]
    ctf = bids_run_file(root, subject, session, run, task, "meg", ".ds")
    if not simulated and (Path(ctf).exists() or not Path(raw).exists()):
        raw = ctf
    return {"raw": raw, "events": files["events"]}


def things_eeg2_root(config: Mapping[str, Any]) -> str | None:
    """The THINGS-EEG2 copy the workflow reads: ``things_eeg2.root``, or the simulated one written under
    ``{results_dir}/things_eeg2/simulated`` (``things_eeg2.simulation.enabled``)."""
    section = config["things_eeg2"]
    if section["simulation"]["enabled"]:
        return f"{config['results_dir']}/things_eeg2/simulated"
    return section["root"]


def things_eeg2_image_set(config: Mapping[str, Any]) -> str | None:
    """The THINGS-EEG2 image set (``image_metadata.npy``, ``training_images/``, ``test_images/``)."""
    root = things_eeg2_root(config)
    return None if root is None else f"{root}/{config['things_eeg2']['images_dir']}"


@dataclass(frozen=True)
class Layout:
    """The results tree of one config (``results_dir`` and, for a real study, its BIDS and stimuli roots)."""

    results: str
    bids_root: str
    stimuli_images: str
    task: str = "main"  # study.task (the BIDS task label)
    simulated: bool = True  # study.source 'simulated': the workflow writes the BIDS tree itself

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Layout:
        study, results = config["study"], config["results_dir"]
        simulated = study["source"] == "simulated"
        own_images = simulated or study["source"] == "nsd"  # NSD's images are exported from its HDF5 file
        bids_root = f"{results}/bids" if simulated else study["bids_root"]
        images = f"{results}/stimuli/images" if own_images else study["stimuli_root"]
        if study["source"] == "things_eeg2":  # the BIDS-EEG tree the workflow writes, the dataset's image set
            bids_root, images = f"{results}/things_eeg2/bids", things_eeg2_image_set(config)
        return cls(
            results=results,
            bids_root=bids_root,
            stimuli_images=images,
            task=study["task"],
            simulated=simulated,
        )

    # ---- jobs: every rule's log and benchmark
    def log(self, rule: str, job: str | None = None) -> str:
        """The log of one job of ``rule`` (``job``: its wildcard pattern; one-job rules: the rule name)."""
        return f"{self.logs}/{rule}/{job or rule}.log"

    def benchmark(self, rule: str, job: str | None = None) -> str:
        """The benchmark TSV of one job of ``rule`` (named as :meth:`log`)."""
        return f"{self.benchmarks}/{rule}/{job or rule}.tsv"

    @property
    def run_stem(self) -> str:
        """File stem of a run, ``{subject}``/``{session}``/``{run}`` kept: a job name of the per-run rules."""
        return run_stem("{subject}", "{session}", "{run}", self.task)

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
    def subject_ground_truth(self) -> str:
        """What the simulator drew for one subject (head, dipoles, per-trial variables)."""
        return str(bids_path(self.sourcedata, "{subject}", suffix="ground_truth", extension=".json").fpath)

    def source_run(self, kind: str) -> str:
        """One simulated run's ``raw`` recording or stimulus ``log`` (:data:`SOURCE_RUN_FILES`)."""
        suffix, ext = SOURCE_RUN_FILES[kind]
        return bids_run_file(self.sourcedata, "{subject}", "{session}", "{run}", self.task, suffix, ext)

    # ---- BIDS: the simulated study's converted tree, or an existing dataset's
    @property
    def bids_run_files(self) -> dict[str, str]:
        """Patterns of one run's own files (:data:`BIDS_RUN_FILES`), as the bids_run job writes them."""
        return bids_run_files(self.bids_root, "{subject}", "{session}", "{run}", self.task)

    @property
    def bids_session_files(self) -> dict[str, str]:
        """Patterns of one session's ``scans`` and ``coordsystem`` files."""
        return bids_session_files(self.bids_root, "{subject}", "{session}")

    @property
    def bids_dataset_files(self) -> dict[str, str]:
        return bids_dataset_files(self.bids_root, self.task)

    def bids_input_files(self, subject: str, session: str, run: str) -> dict[str, str]:
        """``{'raw', 'events'}`` of one run as later stages read it (:func:`bids_input_files`)."""
        return bids_input_files(self.bids_root, subject, session, run, self.task, self.simulated)

    def bids_input_function(self) -> Callable[[Any], dict[str, str]]:
        """A Snakemake input function ``f(wildcards) -> {'raw', 'events'}`` for the wildcards' run."""

        def bids_run_inputs(wildcards: Any) -> dict[str, str]:
            return self.bids_input_files(wildcards.subject, wildcards.session, wildcards.run)

        return bids_run_inputs

    @property
    def bids_ready(self) -> str:
        """The file that says the BIDS dataset is complete: the simulated tree's description, or the inventory
        of an existing dataset (a run is read only after it)."""
        return self.bids_dataset_files["description"] if self.simulated else self.bids_inventory

    @property
    def bids_inventory(self) -> str:
        return f"{self.results}/bids_check/inventory.tsv"

    # ---- preprocessing: per-run epochs (a BIDS derivative) and QC, then per subject
    @property
    def derivatives(self) -> str:
        return f"{self.results}/derivatives/megdecode"

    @property
    def derivatives_description(self) -> str:
        return f"{self.derivatives}/dataset_description.json"

    @property
    def epochs(self) -> str:
        """One run's epochs in the derivatives tree (``_epo.fif``)."""
        return bids_run_file(self.derivatives, "{subject}", "{session}", "{run}", self.task, "epo", ".fif")

    @property
    def qc(self) -> str:
        return f"{self.results}/qc"

    def qc_run(self, kind: str) -> str:
        """One run's QC row (``qc``) or power spectra (``psd``), :data:`QC_RUN_FILES`."""
        suffix, ext = QC_RUN_FILES[kind]
        name = bids_run_path(None, "{subject}", "{session}", "{run}", self.task).update(
            suffix=suffix, extension=ext
        )
        return f"{self.qc}/runs/{name.basename}"

    @property
    def qc_runs_table(self) -> str:
        """One subject's QC rows of every run."""
        return f"{self.qc}/sub-{{subject}}_runs.tsv"

    @property
    def qc_report(self) -> str:
        return f"{self.qc}/sub-{{subject}}_report.html"

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

    def model_file(self, model: str, kind: str) -> str:
        """A file of one trained model's folder beside its predictions (:data:`MODEL_FILES`)."""
        return f"{self.model_dir(model)}/{MODEL_FILES[kind]}"

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

    def decoder_file(self, kind: str) -> str:
        """The decoder generator's ``weights``, ``history`` or ``meta`` (``decoder.json``)."""
        name = "decoder.json" if kind == "meta" else MODEL_FILES[kind]
        return f"{self.decoder_generator}/{name}"

    @property
    def reconstruction_subject(self) -> str:
        return f"{self.reconstruction}/{{generator}}/sub-{{subject}}"

    def reconstruction_file(self, name: str) -> str:
        """A file of one (generator, subject) folder: ``reconstructions.npz``, ``images``, ``metrics.tsv``,
        ``best_median_worst.png``."""
        return f"{self.reconstruction_subject}/{name}"

    def reconstruction_summary(self, extension: str) -> str:
        """The summary over generators and subjects (``tsv``, ``md`` or ``html``)."""
        return f"{self.reconstruction}/summary.{extension}"

    @property
    def attribute_readout(self) -> str:
        """The attribute readout scoring MEG and fMRI reconstructions (:mod:`~.attribute_readout`)."""
        return f"{self.reconstruction}/attribute_readout"

    @property
    def realtime(self) -> str:
        """The online replay of one (backbone, subject, seed): per-trial TSV, summary, figure."""
        return f"{self.results}/realtime/{{backbone}}/sub-{{subject}}/seed-{{seed}}"

    def realtime_file(self, name: str) -> str:
        """``trials.tsv``, ``summary.tsv`` or ``replay.png`` of one replay."""
        return f"{self.realtime}/{name}"

    @property
    def tables(self) -> str:
        return f"{self.results}/tables"

    def table(self, name: str) -> str:
        """A report table (``results_long.tsv``, ``table1.md``, ``meg_vs_fmri.tsv``, ...)."""
        return f"{self.tables}/{name}"

    @property
    def figures(self) -> str:
        return f"{self.results}/figures"

    def figure(self, name: str) -> str:
        """A report figure (``retrieval.png``, ``retrieval.pdf``, ...)."""
        return f"{self.figures}/{name}"

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

    def fmri_model_file(self, model: str, kind: str) -> str:
        """A file of an fMRI decoder's folder beside its predictions (:data:`MODEL_FILES`)."""
        return f"{self.fmri_predictions(model).rsplit('/', 1)[0]}/{MODEL_FILES[kind]}"

    @property
    def fmri_reconstruction_subject(self) -> str:
        """One fMRI subject's reconstructions and their metrics (the MEG stage's files, fMRI predictions)."""
        return f"{self.fmri}/reconstruction/{{generator}}/sub-{{subject}}"

    def fmri_reconstruction_file(self, name: str) -> str:
        """A file of one fMRI (generator, subject) folder (as :meth:`reconstruction_file`)."""
        return f"{self.fmri_reconstruction_subject}/{name}"

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

    # ---- THINGS-EEG2 (target ``things_eeg2``; megdecode.bids_eeg, megdecode.artifacts.eeg)
    @property
    def things_eeg2(self) -> str:
        return f"{self.results}/things_eeg2"

    @property
    def things_eeg2_bids(self) -> str:
        """The BIDS-EEG tree converted from the raw files."""
        return f"{self.things_eeg2}/bids"

    def things_eeg2_bids_session_files(self) -> dict[str, str]:
        """One session's recordings (both partitions), ``{subject}``/``{session}`` kept: ``<task>_<kind>``."""
        return {
            f"{task}_{kind}": path
            for task in ("train", "test")
            for kind, path in bids_eeg_files(self.things_eeg2_bids, "{subject}", "{session}", task).items()
        }

    @property
    def things_eeg2_bids_description(self) -> str:
        return f"{self.things_eeg2_bids}/dataset_description.json"

    def meg_only(self, path: str) -> bool:
        """Whether ``path`` belongs to a stage that only a MEG study has (the BIDS check, per-run QC, the
        derivatives tree, the online replay): not a target of a THINGS-EEG2 study."""
        prefixes = (f"{self.qc}/", f"{self.results}/realtime/", f"{self.derivatives}/")
        return str(path).startswith(prefixes) or str(path) == self.bids_inventory

    def things_eeg2_preprocessed(self, partition: str) -> str:
        """One subject's preprocessed ``training`` or ``test`` partition (:mod:`megdecode.artifacts.eeg`)."""
        return f"{self.things_eeg2}/preprocessed/sub-{{subject}}_{partition}.npz"

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

    @property
    def learning_curve_concept_renders(self) -> str:
        """Statistics of fresh renders of each test concept, for the fair ceiling
        (:mod:`megdecode.artifacts.learning_curve`)."""
        return f"{self.learning_curve}/test_concept_renders.tsv"

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

    # the EEG curve (learning_curve.modalities with eeg): its own folder, one per world
    @property
    def learning_curve_eeg_scores(self) -> str:
        """Per-item retrieval scores of one EEG job (:mod:`megdecode.artifacts.learning_curve`)."""
        return f"{self.learning_curve}/eeg/{{world}}/sub-{{subject}}_seed-{{seed}}_n-{{n_train}}_scores.tsv"

    @property
    def learning_curve_eeg_trials(self) -> str:
        """The generating variables of one EEG job's trials, neighbours included."""
        return f"{self.learning_curve}/eeg/{{world}}/sub-{{subject}}_seed-{{seed}}_n-{{n_train}}_trials.tsv"

    def learning_curve_summary(self, name: str) -> str:
        """One of the experiment's summary files (``summary.tsv``, ``paired.tsv``, ``slopes.tsv``,
        ``learning_curve.md``, ``learning_curve.png`` / ``.pdf``)."""
        return f"{self.learning_curve}/{name}"

    # ---- the recipe study (target ``recipe_study``; :mod:`megdecode.artifacts.recipe_study`)
    @property
    def recipe_study(self) -> str:
        return f"{self.results}/recipe_study"

    @property
    def recipe_ridge_scores(self) -> str:
        """Ridge of one unit, alpha chosen on one validation type."""
        unit = "sub-{subject}_seed-{seed}_n-{n_train}"
        return f"{self.recipe_study}/{{world}}/ridge/{unit}_val-{{validation}}_scores.tsv"

    @property
    def recipe_ceiling_scores(self) -> str:
        """The image oracle and the fair ceiling on one subject's test trials (shared by its units)."""
        return f"{self.recipe_study}/{{world}}/ceiling/sub-{{subject}}_seed-{{seed}}_scores.tsv"

    @property
    def recipe_brain_scores(self) -> str:
        """One variant's brain module on one unit (a per-subject variant)."""
        unit = "sub-{subject}_seed-{seed}_n-{n_train}"
        return f"{self.recipe_study}/{{world}}/brain-{{variant}}/{unit}_scores.tsv"

    @property
    def recipe_shared_scores(self) -> str:
        """One variant's model shared by the subjects, scored per subject."""
        return (
            f"{self.recipe_study}/{{world}}/brain-{{variant}}/shared_seed-{{seed}}_n-{{n_train}}_scores.tsv"
        )

    @property
    def recipe_choice(self) -> str:
        """A variant's chosen (stop_on, lr) and the candidates' selection-set scores."""
        return f"{self.recipe_study}/{{world}}/selection/{{variant}}_choice.json"

    @property
    def recipe_selection_scores(self) -> str:
        """Per-item scores of every candidate of a variant's selection job (validation and selection sets)."""
        return f"{self.recipe_study}/{{world}}/selection/{{variant}}_scores.tsv"

    @property
    def recipe_crosscheck_scores(self) -> str:
        """A variant's unit model (as its brain job trains it) scored on validation and the selection set."""
        unit = "sub-{subject}_seed-{seed}_n-{n_train}"
        return f"{self.recipe_study}/{{world}}/crosscheck-{{variant}}/{unit}_scores.tsv"

    def recipe_summary(self, name: str) -> str:
        """One of the study's summary files (``summary.tsv``, ``recipe_study.md``, ``recipe_study.png``,
        ``crosscheck.tsv``, ``crosscheck.md``)."""
        return f"{self.recipe_study}/{name}"
