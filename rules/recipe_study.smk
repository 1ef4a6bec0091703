# Experiment: the preregistered recipe study (docs/recipe-study.md; target `recipe_study`, not part of `all`).
# Per unit (world, subject, seed, size): ridge once per validation type, and the brain module
# once per per-subject variant; per (world, subject, seed) the ceilings on that subject's test trials; per (world, seed, size) one model of each shared variant; per variant with
# candidate settings one selection job on held-out training concepts of one unit, whose choice every unit of
# that variant (and of the variants taking its choices) then trains with. Per unit of each variant in
# crosscheck_variants, the same model scored on the selection set (the variants compared on validation alone).
include: "recipe_study_inputs.smk"


wildcard_constraints:
    validation=r"trials|concepts",
    variant=r"[A-Za-z0-9]+",


rule recipe_study_ridge:
    input:
        **RS_INPUTS,
    output:
        scores=L.recipe_ridge_scores,
    log:
        L.log(
            "recipe_study_ridge",
            "{world}/sub-{subject}_seed-{seed}_n-{n_train}_val-{validation}",
        ),
    benchmark:
        L.benchmark(
            "recipe_study_ridge",
            "{world}/sub-{subject}_seed-{seed}_n-{n_train}_val-{validation}",
        )
    conda:
        CONDA_ENV
    threads: RS_CFG["threads"]
    resources:
        mem_mb=lambda wc: 3000 + 2 * int(wc.n_train),
        runtime=RS_CFG["runtime"],
    params:
        **RS_PARAMS,
    script:
        "../workflow/scripts/recipe_study_ridge.py"


rule recipe_study_ceiling:
    input:
        **RS_INPUTS,
        concept_renders=L.learning_curve_concept_renders,
    output:
        scores=L.recipe_ceiling_scores,
    log:
        L.log("recipe_study_ceiling", "{world}/sub-{subject}_seed-{seed}"),
    benchmark:
        L.benchmark("recipe_study_ceiling", "{world}/sub-{subject}_seed-{seed}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=RS_CFG["runtime"],
    params:
        **RS_PARAMS,
    script:
        "../workflow/scripts/recipe_study_ceiling.py"


rule recipe_study_select:
    input:
        **RS_INPUTS,
    output:
        choice=L.recipe_choice,
        scores=L.recipe_selection_scores,
    log:
        L.log("recipe_study_select", "{world}/{variant}"),
    benchmark:
        L.benchmark("recipe_study_select", "{world}/{variant}")
    conda:
        CONDA_ENV
    threads: RS_CFG["threads"]
    resources:
        mem_mb=lambda wc: 3000 + 2 * int(RS_SELECT["n_train"]),
        runtime=RS_CFG["runtime"],
    params:
        **RS_PARAMS,
        selection=RS_SELECT,
    script:
        "../workflow/scripts/recipe_study_select.py"


rule recipe_study_brain:
    input:
        **RS_INPUTS,
        choice=rs_choice,
    output:
        scores=L.recipe_brain_scores,
    log:
        L.log(
            "recipe_study_brain",
            "{world}/{variant}/sub-{subject}_seed-{seed}_n-{n_train}",
        ),
    benchmark:
        L.benchmark(
            "recipe_study_brain",
            "{world}/{variant}/sub-{subject}_seed-{seed}_n-{n_train}",
        )
    conda:
        CONDA_ENV
    threads: RS_CFG["threads"]
    resources:
        mem_mb=lambda wc: 3000 + 2 * int(wc.n_train),
        runtime=RS_CFG["runtime"],
    params:
        **RS_PARAMS,
    script:
        "../workflow/scripts/recipe_study_brain.py"


rule recipe_study_shared:
    input:
        **RS_INPUTS,
        choice=rs_choice,
    output:
        scores=L.recipe_shared_scores,
    log:
        L.log("recipe_study_shared", "{world}/{variant}/seed-{seed}_n-{n_train}"),
    benchmark:
        L.benchmark("recipe_study_shared", "{world}/{variant}/seed-{seed}_n-{n_train}")
    conda:
        CONDA_ENV
    threads: RS_CFG["threads"]
    resources:
        mem_mb=lambda wc: 3000 + 8 * int(wc.n_train),
        runtime=RS_CFG["runtime"],
    params:
        **RS_PARAMS,
        subjects=RS_CFG["subjects"],
    script:
        "../workflow/scripts/recipe_study_brain.py"


rule recipe_study_crosscheck:
    input:
        **RS_INPUTS,
        choice=rs_choice,
    output:
        scores=L.recipe_crosscheck_scores,
    log:
        L.log(
            "recipe_study_crosscheck",
            "{world}/{variant}/sub-{subject}_seed-{seed}_n-{n_train}",
        ),
    benchmark:
        L.benchmark(
            "recipe_study_crosscheck",
            "{world}/{variant}/sub-{subject}_seed-{seed}_n-{n_train}",
        )
    conda:
        CONDA_ENV
    threads: RS_CFG["threads"]
    resources:
        mem_mb=lambda wc: 3000 + 2 * int(wc.n_train),
        runtime=RS_CFG["runtime"],
    params:
        **RS_PARAMS,
        on_selection_set=True,
    script:
        "../workflow/scripts/recipe_study_brain.py"


rule recipe_study_crosscheck_summary:
    input:
        scores=rs_crosscheck_scores(),
    output:
        **RS_CROSSCHECK_FILES,
    log:
        L.log("recipe_study_crosscheck_summary"),
    benchmark:
        L.benchmark("recipe_study_crosscheck_summary")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        statistics={
            **{k: RS_CFG[k] for k in ("n_bootstrap", "ci_level", "selection")},
            "variants": RS_CROSSCHECK,
        },
        seed=config["seed"],
    script:
        "../workflow/scripts/recipe_study_crosscheck_summary.py"


rule recipe_study_summary:
    input:
        scores=rs_unit_scores(),
        choices=expand(
            L.recipe_choice, world=RS_CFG["worlds"], variant=RS_OWN_SELECTION
        ),
    output:
        **RS_SUMMARY_FILES,
    log:
        L.log("recipe_study_summary"),
    benchmark:
        L.benchmark("recipe_study_summary")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        statistics={k: RS_CFG[k] for k in ("n_bootstrap", "ci_level")},
        seed=config["seed"],
    script:
        "../workflow/scripts/recipe_study_summary.py"
