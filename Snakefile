# megdecode: decode seen images from MEG (after Benchetrit, Banville & King, 2023).
# Thin on purpose: configuration, validation and one include per stage; the work is in src/megdecode.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/bids.smk"
include: "rules/preprocess.smk"
include: "rules/latents.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/reconstruct.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,
