#!/usr/bin/env bash
# The banding penalty on top of the gain loss (issue 9: stripes and the texture step on real thick scans), as
# fine-tunes of the shipped v4 models: 1000 steps each on the v4 joint CT+MR data, 1 thread each side by side.
#   ct_band: the v4 CT model (Resources/Models/training/v4/joint_ct_run/last.safetensors), --banding-weight W
#   mr_band: the v4 MR model (v4/joint_run/last.safetensors), the same weight
# Weight: with the gain loss the penalty's gradient is ~300x smaller than the loss's (median over 24 batches of the
# v4 CT model; with L1 it was 4.5x larger at weight 1, where the texture ratio overshot), so W = 300 gives the two
# about equal pull. W (default 300) is the second argument: banding_v5.sh ct|mr|all [W].
set -euo pipefail
source "$(dirname "$0")/v5_common.sh"
W=${2:-300}
COMMON+=(--banding-weight "$W")
what=${1:-all}
if [[ $what == ct || $what == all ]]; then fine_tune ct_band_w$W ct; fi
if [[ $what == mr || $what == all ]]; then fine_tune mr_band_w$W mr; fi
