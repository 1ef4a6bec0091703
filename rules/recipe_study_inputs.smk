# Config slices and input helpers of rules/recipe_study.smk.
from megdecode.plan import recipe_crosscheck_variants

RS_CFG = config["recipe_study"]
RS_NOT_JOB_KEYS = (
    "worlds",
    "subjects",
    "seeds",
    "train_sizes",
    "selection",
    "crosscheck_variants",
    "n_bootstrap",
    "ci_level",
    "runtime",
)
RS_JOB_CFG = {k: v for k, v in RS_CFG.items() if k not in RS_NOT_JOB_KEYS}
RS_SELECT = RS_CFG["selection"]
RS_VARIANTS = RS_CFG["variants"]
RS_CROSSCHECK = recipe_crosscheck_variants(RS_CFG)
RS_OWN_SELECTION = [
    name
    for name, v in RS_VARIANTS.items()
    if not v.get("choices_from") and (len(v["stop_on"]) > 1 or len(v["lr"]) > 1)
]
RS_INPUTS = dict(
    stimuli=STIMULI_TABLE,
    ground_truth=L.ground_truth,
    latents=latent_files([RS_CFG["backbone"]], "latents"),
)
RS_PARAMS = dict(
    recipe_study=RS_JOB_CFG,
    simulation=config["simulation"],
    epochs={
        k: config["preprocessing"][k]
        for k in ("tmin", "tmax", "sfreq", "l_freq", "h_freq")
    },
    brain_module=config["brain_module"],
    training=TRAIN_PARAMS,
    alphas=RIDGE_CFG["alphas"],
    seed=config["seed"],
)


def rs_choice(wc):
    """The selection job's choice a variant trains with (none when its candidates are single)."""
    variant = RS_VARIANTS[wc.variant]
    owner = variant.get("choices_from") or wc.variant
    if owner not in RS_OWN_SELECTION:
        return []
    return L.recipe_choice.format(world=wc.world, variant=owner)


def rs_unit_scores():
    """Every unit job's scores file of the grid, and every subject's ceilings."""
    grid = dict(
        world=RS_CFG["worlds"], seed=RS_CFG["seeds"], n_train=RS_CFG["train_sizes"]
    )
    validations = sorted({v["validation"] for v in RS_VARIANTS.values()})
    files = expand(
        L.recipe_ceiling_scores,
        world=RS_CFG["worlds"],
        subject=RS_CFG["subjects"],
        seed=RS_CFG["seeds"],
    )
    files += expand(
        L.recipe_ridge_scores,
        subject=RS_CFG["subjects"],
        validation=validations,
        **grid,
    )
    for name, v in RS_VARIANTS.items():
        if v["shared"]:
            files += expand(L.recipe_shared_scores, variant=name, **grid)
        else:
            files += expand(
                L.recipe_brain_scores, variant=name, subject=RS_CFG["subjects"], **grid
            )
    return files


def rs_crosscheck_scores():
    """Every cross-check job's scores file (per-subject variants listed in crosscheck_variants)."""
    return expand(
        L.recipe_crosscheck_scores,
        world=RS_CFG["worlds"],
        variant=RS_CROSSCHECK,
        subject=RS_CFG["subjects"],
        seed=RS_CFG["seeds"],
        n_train=RS_CFG["train_sizes"],
    )


RS_CROSSCHECK_FILES = (
    {
        "crosscheck_table": L.recipe_summary("crosscheck.tsv"),
        "crosscheck_report": L.recipe_summary("crosscheck.md"),
    }
    if RS_CROSSCHECK
    else {}
)
RS_SUMMARY_FILES = {
    "summary": L.recipe_summary("summary.tsv"),
    "report": L.recipe_summary("recipe_study.md"),
    "png": L.recipe_summary("recipe_study.png"),
}
