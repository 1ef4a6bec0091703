# Stage: latents (see docs/ARCHITECTURE.md and docs/backbones.md).
# One job per backbone: stimulus images -> {R}/latents/{backbone}/latents.npy + index.tsv + latents.json.
# Backbones with options.random_init first get a small random model built and saved by build_random_backbone,
# then load it through the same from_pretrained code path as a Hub id.
from megdecode.latents import (
    latents_job_inputs,
    latents_job_resources,
    latents_job_threads,
    needs_random_build,
)

BACKBONES = config["backbones"]
RANDOM_BACKBONES = [
    name for name, spec in BACKBONES.items() if needs_random_build(spec)
]
PRETRAINED = L.pretrained


rule build_random_backbone:
    output:
        directory(PRETRAINED),
    log:
        L.log("build_random_backbone", "{backbone}"),
    benchmark:
        L.benchmark("build_random_backbone", "{backbone}")
    wildcard_constraints:
        backbone="|".join(RANDOM_BACKBONES) or "(?!)",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=lambda wildcards: BACKBONES[wildcards.backbone],
        seed=config["seed"],
    script:
        "../workflow/scripts/latents_build_random.py"


rule latents:
    input:
        # the simulator writes the images folder; a real study's folder lies outside the workflow
        unpack(
            lambda wildcards: latents_job_inputs(
                wildcards.backbone,
                BACKBONES,
                STIMULI_TABLE,
                STIMULI_IMAGES if SIMULATED else None,
                PRETRAINED,
            )
        ),
    output:
        **LATENT_FILES,
    log:
        L.log("latents", "{backbone}"),
    benchmark:
        L.benchmark("latents", "{backbone}")
    wildcard_constraints:
        backbone="|".join(BACKBONES) or "(?!)",
    conda:
        CONDA_ENV
    threads: lambda wildcards: latents_job_threads(BACKBONES[wildcards.backbone])
    resources:
        mem_mb=lambda wildcards: latents_job_resources(BACKBONES[wildcards.backbone])[
            "mem_mb"
        ],
        runtime=lambda wildcards: latents_job_resources(BACKBONES[wildcards.backbone])[
            "runtime"
        ],
        gpu=lambda wildcards: latents_job_resources(BACKBONES[wildcards.backbone])[
            "gpu"
        ],
    params:
        # only this backbone's entry: editing it reruns this backbone only
        cfg=lambda wildcards: BACKBONES[wildcards.backbone],
        images_root=STIMULI_IMAGES,
    script:
        "../workflow/scripts/latents_compute.py"


ALL_TARGETS.extend(
    expand(
        list(LATENT_FILES.values()),
        backbone=list(BACKBONES),
    )
)
