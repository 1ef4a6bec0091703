"""Where every file goes (megdecode.artifacts.paths): BIDS names through mne-bids, rules build no path."""

from __future__ import annotations

import re
from pathlib import Path

from megdecode.artifacts import paths
from megdecode.artifacts.paths import Layout

REPO = Path(__file__).resolve().parents[1]
SIMULATED = Layout(results="r", bids_root="r/bids", stimuli_images="r/stimuli/images", task="main")


def test_bids_files_follow_ds004212_naming(tmp_path: Path) -> None:
    files = paths.bids_run_files(tmp_path, "01", "02", "03", "main")
    assert files["raw"] == f"{tmp_path}/sub-01/ses-02/meg/sub-01_ses-02_task-main_run-03_meg.fif"
    assert Path(files["events"]).name == "sub-01_ses-02_task-main_run-03_events.tsv"
    session = paths.bids_session_files(tmp_path, "01", "02")
    assert session["scans"] == f"{tmp_path}/sub-01/ses-02/sub-01_ses-02_scans.tsv"
    assert session["coordsystem"] == f"{tmp_path}/sub-01/ses-02/meg/sub-01_ses-02_coordsystem.json"
    assert paths.bids_dataset_files(tmp_path, "main")["events_json"] == f"{tmp_path}/task-main_events.json"


def test_layout_patterns_keep_wildcards_and_fill_in_like_concrete_paths() -> None:
    labels = {"subject": "A1", "session": "02", "run": "10"}
    concrete = paths.bids_run_files("r/bids", "A1", "02", "10", "main")
    assert {k: v.format(**labels) for k, v in SIMULATED.bids_run_files.items()} == concrete
    assert SIMULATED.run_stem.format(**labels) == "sub-A1_ses-02_task-main_run-10"
    assert SIMULATED.epochs.format(**labels) == (
        "r/derivatives/megdecode/sub-A1/ses-02/meg/sub-A1_ses-02_task-main_run-10_epo.fif"
    )
    assert SIMULATED.qc_run("psd").format(**labels) == "r/qc/runs/sub-A1_ses-02_task-main_run-10_psd.npz"
    assert SIMULATED.source_run("log").format(**labels) == (
        "r/sourcedata/sub-A1/ses-02/meg/sub-A1_ses-02_task-main_run-10_log.tsv"
    )
    assert (
        SIMULATED.subject_ground_truth.format(subject="A1") == "r/sourcedata/sub-A1/sub-A1_ground_truth.json"
    )

    class Wildcards:
        subject, session, run = "A1", "02", "10"

    inputs = SIMULATED.bids_input_function()(Wildcards())
    assert inputs == {"raw": concrete["raw"], "events": concrete["events"]}


def test_an_existing_dataset_is_read_as_ctf_unless_only_fif_is_there(tmp_path: Path) -> None:
    real = Layout(results="r", bids_root=str(tmp_path), stimuli_images="img", task="main", simulated=False)
    assert real.bids_input_files("BIGMEG1", "01", "01")["raw"].endswith("run-01_meg.ds")
    fif = Path(paths.bids_run_file(tmp_path, "BIGMEG1", "01", "02", "main", "meg", ".fif"))
    fif.parent.mkdir(parents=True)
    fif.touch()
    assert real.bids_input_files("BIGMEG1", "01", "02")["raw"] == str(fif)
    assert real.bids_ready == "r/bids_check/inventory.tsv"
    assert SIMULATED.bids_ready == "r/bids/dataset_description.json"


def test_logs_and_benchmarks_are_named_by_rule_and_job() -> None:
    assert SIMULATED.log("report_tables") == "r/logs/report_tables/report_tables.log"
    job = "{backbone}/sub-{subject}"
    assert SIMULATED.benchmark("train_ridge", job) == "r/benchmarks/train_ridge/{backbone}/sub-{subject}.tsv"


# a path-like string a rule file may hold: a file of the workflow itself (../workflow/..., an include)
WORKFLOW_FILE = re.compile(r'^"(\.\./|rules/)')
# ... or the job name given to L.log / L.benchmark
JOB_NAME = re.compile(r'L\.(log|benchmark)\(\s*"[a-z_]+",\s*"[^"\n]*",?\s*\)')
DOCSTRING = re.compile(r'"""[\s\S]*?"""')


def _blank(match: re.Match) -> str:
    """The matched text as blank lines (line numbers stay right)."""
    return "\n" * match.group(0).count("\n")


def test_rule_files_build_no_path_by_hand() -> None:
    """Every path in rules/*.smk comes from the Layout ``L``: no string with a '/' outside the exceptions."""
    offending = []
    for smk in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        code = "\n".join(line.split("#", 1)[0] for line in smk.read_text().splitlines())
        code = JOB_NAME.sub(_blank, DOCSTRING.sub(_blank, code))
        for literal in re.finditer(r'(?:f|rf|r)?"[^"\n]*"', code):
            if "/" in literal.group(0) and not WORKFLOW_FILE.match(literal.group(0)):
                number = code.count("\n", 0, literal.start()) + 1
                offending.append(f"{smk.name}:{number}: {literal.group(0)}")
    assert not offending, "paths built in rule files (use megdecode.artifacts.paths.Layout):\n" + "\n".join(
        offending
    )
