"""Cluster settings applied to every rule: memory and runtime grow with each retry.

Every rule declares its own ``mem_mb`` and ``runtime`` (sized from measurements), so a profile's
``default-resources: mem_mb: "2000 * attempt"`` never applies to them, and a job killed for memory would be
retried with the same memory. :func:`grow_with_attempt` multiplies each rule's own values by ``attempt``
(1 for the first try, 2 for the first retry, ...). Values a profile or the command line sets per rule
(``set-resources``) are left as given: they say themselves how they grow.
"""

from __future__ import annotations

from typing import Any

GROWING = ("mem_mb", "runtime")


def _grown(resource: Any) -> Any:
    """A snakemake ``Resource`` whose value is the original one (evaluated as snakemake would) * attempt."""
    from snakemake.resources import Resource

    def value(wildcards, input, attempt, threads, rulename):  # noqa: A002 - snakemake's parameter name
        base = resource.evaluate(wildcards, input=input, attempt=attempt, threads=threads, rulename=rulename)
        raw = base._value  # an int (MB, minutes) once evaluated; anything else is left as it is
        return raw * attempt if isinstance(raw, int) and not isinstance(raw, bool) else raw

    return Resource(resource.name, value)


def grow_with_attempt(workflow: Any, names: tuple[str, ...] = GROWING) -> list[str]:
    """Make every rule's own ``mem_mb``/``runtime`` grow with ``attempt``; returns the rules changed."""
    overwritten = workflow.resource_settings._parsed_overwrite_resources or {}
    changed = []
    for rule in workflow.rules:
        if rule.name == "all":
            continue
        for name in names:
            if name not in rule.resources or name in overwritten.get(rule.name, {}):
                continue
            rule.resources[name] = _grown(rule.resources[name])
            changed.append(rule.name)
    return sorted(set(changed))
