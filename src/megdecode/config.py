"""Load, merge and validate workflow configs against the JSON Schema shipped in ``megdecode/schemas``.

The schema is split into one file per stage; ``config.schema.yaml`` refers to them with
``$ref: <file>``. Validation fills in schema defaults and rejects unknown keys with a
"did you mean" suggestion, so a misspelled key fails before any job runs.

Configs are overlays (:func:`merge_configs`: mappings merge key by key, other values replace). The workflow
merges the embedded default ``config.yaml``, each ``--configfile`` and the ``--config`` values, in that order
(rules/common.smk), as :func:`load_config` merges the files it is given. A backbone set to ``null`` is
removed. A config of another study (:func:`extends_default` is false) stands alone, without the default.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
DEFAULT_SCHEMA = SCHEMA_DIR / "config.schema.yaml"


T = TypeVar("T")


class ConfigError(ValueError):
    """A config that does not match the schema; the message names the key and the fix."""


def dataclass_from_section(cls: type[T], values: Mapping[str, Any], section: str) -> T:
    """Build settings dataclass ``cls`` from a validated config slice: every field given, nothing else.

    Defaults live in the schema only (the validated config carries them); use :func:`section_defaults` to
    get them outside a workflow.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        hints = [
            f"'{k}'" + (f" (did you mean '{c[0]}'?)" if (c := difflib.get_close_matches(k, names, 1)) else "")
            for k in unknown
        ]
        raise ConfigError(f"unknown {section} key(s) {', '.join(hints)}; valid keys: {', '.join(names)}")
    missing = [n for n in names if n not in values]
    if missing:
        raise ConfigError(
            f"{section} lacks {missing}: pass the slice of a validated config (megdecode.config)"
        )
    return cls(**{n: values[n] for n in names})


@cache
def _schema() -> dict[str, Any]:
    return load_schema(DEFAULT_SCHEMA)


def section_defaults(*path: str) -> dict[str, Any]:
    """Schema defaults of one config section, e.g. ``section_defaults("training")`` (a fresh copy)."""
    node = _schema()
    for key in path:
        node = node["properties"][key]
    return copy.deepcopy(_fill_defaults({}, node))


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects a key given twice in one mapping (YAML itself lets the last win)."""


def _construct_unique_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            first = seen[key].start_mark
            again = key_node.start_mark
            raise ConfigError(
                f"{again.name}: key '{key}' is given twice in one mapping (line {first.line + 1} and "
                f"line {again.line + 1}); YAML would silently keep the last one. Delete or rename one of them"
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_yaml(path: Path | str) -> Any:
    """Read a YAML file safely, rejecting duplicate keys with both line numbers."""
    with open(path) as f:
        return yaml.load(f, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader subclass


def merge_configs(*configs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``configs`` merged in order, as Snakemake merges config files: a mapping merges key by key
    (recursively, into an empty one where the value before was not a mapping), any other value (a list
    included) replaces the one before. The inputs are not changed.
    """
    merged: dict[str, Any] = {}
    for config in configs:
        _merge_into(merged, config or {})
    return merged


def _merge_into(base: dict[str, Any], overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, Mapping):
            below = base.get(key)
            base[key] = below if isinstance(below, dict) else {}
            _merge_into(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def extends_default(config: Mapping[str, Any]) -> bool:
    """Whether ``config`` (the overlays given to the workflow, merged) is laid over the embedded default.

    The default is a simulated study: an overlay of it changes what differs. A config of another study
    (``study.source`` other than ``simulated``) starts from the schema's defaults instead, so that nothing of
    the simulated study (its backbones, its small widths) leaks into it; except the simulated THINGS-EEG2
    (``things_eeg2.simulation.enabled``), which the simulated study's images and responses make.
    """
    study = config.get("study") or {}
    source = study.get("source", "simulated")
    simulated_eeg = bool(((config.get("things_eeg2") or {}).get("simulation") or {}).get("enabled"))
    return source == "simulated" or (source == "things_eeg2" and simulated_eeg)


def load_schema(path: Path | str = DEFAULT_SCHEMA) -> dict[str, Any]:
    """Load a schema file and inline every ``$ref`` to a sibling schema file."""
    path = Path(path)
    with open(path) as f:
        schema = yaml.safe_load(f)
    return _inline_refs(schema, path.parent)


def _inline_refs(node: Any, base: Path) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            inlined = load_schema(base / ref)
            inlined.pop("$schema", None)
            extra = {k: _inline_refs(v, base) for k, v in node.items() if k != "$ref"}
            return {**inlined, **extra}
        return {k: _inline_refs(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, base) for v in node]
    return node


def _fill_defaults(instance: Any, schema: Mapping[str, Any]) -> Any:
    """Return a copy of ``instance`` with object defaults from ``schema`` filled in (recursively)."""
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return instance
    filled = dict(instance)
    properties = schema.get("properties", {})
    for key, subschema in properties.items():
        if key not in filled and "default" in subschema:
            filled[key] = copy.deepcopy(subschema["default"])
        if key in filled:
            filled[key] = _fill_defaults(filled[key], subschema)
    extra_schema = schema.get("additionalProperties")
    if isinstance(extra_schema, dict):
        for key in set(filled) - set(properties):
            filled[key] = _fill_defaults(filled[key], extra_schema)
    return filled


# The schema's name patterns, said in words (the regex alone is no message for a user).
PATTERN_WORDS = {
    r"^\S+$": (
        "contains whitespace (a space, tab or newline); jobs run through the shell, where a space splits a "
        "path in two: choose a folder name without spaces, e.g. 'my_results'"
    ),
    r"^[A-Za-z0-9]+$": "may contain only letters and digits (A-Z, a-z, 0-9; at least one)",
    r"^[A-Za-z0-9_]+$": "may contain only letters, digits and underscores (at least one)",
    r"^[A-Za-z0-9_.-]+$": "may contain only letters, digits, '_', '.' and '-' (at least one)",
}


def _error_path(error: jsonschema.ValidationError) -> list[list[Any]]:
    """The config keys an error is about: its location, or location + key for each unknown key."""
    location = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        return [[*location, key] for key in sorted(set(error.instance) - allowed)] or [location]
    return [location]


def _has_path(tree: Any, path: Sequence[Any]) -> bool:
    for key in path:
        in_list = isinstance(tree, list) and isinstance(key, int) and key < len(tree)
        if not (in_list or (isinstance(tree, dict) and key in tree)):
            return False
        tree = tree[key]
    return True


def _origin(path: Sequence[Any], sources: Sequence[tuple[str, Any]]) -> str:
    """`` (set in <source>)`` for the last source (later ones override earlier) that sets ``path``."""
    found = [name for name, tree in sources if _has_path(tree, path)]
    return f" (set in {found[-1]})" if found else ""


def _describe(error: jsonschema.ValidationError, sources: Sequence[tuple[str, Any]] = ()) -> str:
    location = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        given = error.instance if isinstance(error.instance, dict) else {}
        unknown = sorted(set(given) - set(allowed))
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(allowed)}"
            origin = _origin([*error.absolute_path, key], sources)
            hints.append(f"unknown key '{key}' in '{location}': {hint}{origin}")
        if hints:
            return "; ".join(hints)
    origin = _origin(list(error.absolute_path), sources)
    if error.validator == "pattern" and error.validator_value in PATTERN_WORDS:
        return f"'{location}': {error.instance!r} {PATTERN_WORDS[error.validator_value]}{origin}"
    return f"'{location}': {error.message}{origin}"


# YAML 1.1 reads ``3e-4`` (no dot) as a string; these are numbers wherever the schema asks for one
_NUMBER_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    found = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, []):
            found |= _types(sub)
    return found


def _child_schema(schema: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The schema of ``key`` in a mapping of ``schema`` (a named property, else ``additionalProperties``)."""
    extra = schema.get("additionalProperties")
    return schema.get("properties", {}).get(key, extra if isinstance(extra, dict) else {})


def _items_schema(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    items = schema.get("items")
    return items if isinstance(items, dict) else {}


def _coerce_numbers(instance: Any, schema: Mapping[str, Any]) -> Any:
    """``instance`` with strings such as ``"3e-4"`` turned into floats where the schema expects a number."""
    if isinstance(instance, str):
        types = _types(schema)
        if "number" in types and "string" not in types and _NUMBER_RE.match(instance.strip()):
            return float(instance)
        return instance
    if isinstance(instance, dict):
        return {k: _coerce_numbers(v, _child_schema(schema, k)) for k, v in instance.items()}
    if isinstance(instance, list):
        return [_coerce_numbers(v, _items_schema(schema)) for v in instance]
    return instance


def _is_named_mapping(schema: Mapping[str, Any]) -> bool:
    """A mapping of user-named entries (``backbones``), rather than one of fixed keys."""
    return not schema.get("properties") and isinstance(schema.get("additionalProperties"), dict)


def _drop_removed_entries(instance: Any, schema: Mapping[str, Any]) -> Any:
    """``instance`` without the user-named entries set to ``null``: how an overlay removes an entry (a
    backbone) of the config below it, since merging mappings can add and change entries but not remove them.
    """
    if not isinstance(instance, dict):
        return instance
    if _is_named_mapping(schema):
        return {k: v for k, v in instance.items() if v is not None}
    return {k: _drop_removed_entries(v, _child_schema(schema, k)) for k, v in instance.items()}


def _canonical_order(instance: Any, schema: Mapping[str, Any]) -> Any:
    """Sort the keys of every fixed-schema mapping (recursively) so that Snakemake, which compares ``params``
    by their ``repr``, sees the same value whatever order a config file writes its keys in. Mappings of
    user-named entries (``backbones``: their order is the tables' row order) keep the order given.
    """
    if isinstance(instance, dict):
        keys = list(instance) if _is_named_mapping(schema) else sorted(instance, key=str)
        return {k: _canonical_order(instance[k], _child_schema(schema, k)) for k in keys}
    if isinstance(instance, list):
        return [_canonical_order(v, _items_schema(schema)) for v in instance]
    return instance


def _check_unique_labels(config: Mapping[str, Any]) -> None:
    """Two backbones with one ``label`` would merge into one table row: name both entries."""
    seen: dict[str, str] = {}
    for name, entry in (config.get("backbones") or {}).items():
        label = entry.get("label") if isinstance(entry, dict) else None
        if not label:  # empty: derived from kind/options
            continue
        if label in seen:
            raise ConfigError(
                f"backbones '{seen[label]}' and '{name}' have the same label '{label}'; tables key rows by "
                "label, so give each backbone its own 'label'"
            )
        seen[label] = name


def validate_config(
    config: Mapping[str, Any],
    schema_path: Path | str = DEFAULT_SCHEMA,
    sources: Sequence[tuple[str, Any]] = (),
) -> dict[str, Any]:
    """Validate ``config`` and return a new dict with schema defaults filled in.

    Raises ``ConfigError`` listing every problem, unknown keys with the closest valid key. ``sources``:
    ``(name, raw mapping)`` of what was merged into ``config``, in order; each problem names the last one
    that sets its key. Numbers written as ``3e-4`` (a string to YAML 1.1) are read as numbers; keys come
    back in a canonical order.
    """
    schema = load_schema(schema_path)
    present = _drop_removed_entries(copy.deepcopy(dict(config)), schema)
    filled = _fill_defaults(_coerce_numbers(present, schema), schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        lines = "\n  - ".join(_describe(e, sources) for e in errors)
        names = [name for name, _ in sources]
        origin = f" from {', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else ""
        origin = f" from {names[0]}" if len(names) == 1 else origin
        raise ConfigError(f"invalid config{origin} (schema {Path(schema_path).name}):\n  - {lines}")
    _check_unique_labels(filled)
    return _canonical_order(filled, schema)


def validate_workflow_config(
    configfiles: Iterable[Path | str], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The workflow's config: its config files merged in order (:func:`merge_configs`), then the ``--config``
    values, validated (:func:`validate_config`), each problem naming the config file (or ``--config``) that
    sets it. Duplicate keys in a file are rejected (Snakemake's own loader keeps the last).
    """
    sources: list[tuple[str, Any]] = [(str(p), load_yaml(p) or {}) for p in configfiles]
    if overrides:
        sources.append(("--config", dict(overrides)))
    return validate_config(merge_configs(*(raw for _, raw in sources)), sources=sources)


def load_config(*paths: Path | str, schema_path: Path | str = DEFAULT_SCHEMA) -> dict[str, Any]:
    """Read YAML configs (safe loader, duplicate keys rejected), merge them in order and validate the result.

    ``load_config("config.yaml", "config/tiny.yaml")`` is what ``snakemake --configfile config/tiny.yaml``
    runs on; a config of another study is read alone (``load_config("config/things-meg.yaml")``).
    """
    merged = merge_configs(*(load_yaml(path) for path in paths))
    try:
        return validate_config(merged, schema_path)
    except ConfigError as err:
        raise ConfigError(f"{' + '.join(str(p) for p in paths)}: {err}") from None


def apply_runtime_environment(config: Mapping[str, Any]) -> None:
    """Set process-wide switches the config asks for (offline model hubs) before any job runs."""
    import os

    if config["offline"]:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"


# what a shell would split or interpret in an unquoted path (letters outside ASCII are fine)
_SHELL_SPECIAL = re.compile(r"[\s'\"`$\\|&;<>(){}*?\[\]#~!]")


def check_interpreter_path(executable: str) -> None:
    """Refuse an interpreter whose path a shell would split: Snakemake starts every job's script with it,
    unquoted (``<python> <script>``), so a space in a parent folder makes every job fail with exit 127."""
    if _SHELL_SPECIAL.search(executable):
        raise ConfigError(
            f"The Python interpreter {executable} lies in a folder whose name has a space or another "
            "character that the shell splits on, and Snakemake starts every job with that path unquoted, so "
            "every job would fail: create the virtual environment in a folder without spaces (for example "
            "python3 -m venv ~/venvs/megdecode, then install there) or move the checkout with its .venv to "
            "such a folder."
        )


def run_grid(subjects: list[str], sessions: list[str], runs: list[str]) -> dict[str, list[str]]:
    """Every (subject, session, run) as ``expand(..., zip, **grid)`` keyword lists."""
    combos = [(sub, ses, run) for sub in subjects for ses in sessions for run in runs]
    return {key: [c[i] for c in combos] for i, key in enumerate(("subject", "session", "run"))}
