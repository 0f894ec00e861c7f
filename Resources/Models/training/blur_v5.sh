#!/usr/bin/env bash
# The smooth-volume augmentation (train --blur-share, DPNSLCore/training/augment.py) against its control, as
# fine-tunes of the shipped v4 CT model: 1000 steps each on the v4 joint CT+MR data, 1 thread each side by side.
#   ct_blur:    30 % of the windows blurred by a Gaussian of sigma 0.5-1.5 voxels before the acquisition
#   ct_control: the same 1000 steps without it (also the control of banding_v5.sh: same seed, lr and steps)
#   mr_blur:    the v4 MR model with the same blur
#   ct_blur_band: ct_blur plus the banding penalty at weight 100 (banding_v5.sh), against the stripes it adds
#   ct_blur15_band: ct_blur_band with half the blurred share (15 %): less of the stripes it adds on real scans?
#   ct_inplane_band: ct_blur_band with the Gaussian in-plane only (--blur-axes inplane): smooth slices, sharp z
#   ct_inplane50_band: ct_inplane_band with half the windows blurred (the v5 CT model); ct_inplane80_band: 80 %
#   ct_inplane: ct_inplane_band without banding
#   mr_inplane50: the v4 MR model with half the windows blurred in-plane (no banding: it costs MR PSNR)
set -euo pipefail
source "$(dirname "$0")/v5_common.sh"
what=${1:-all}
SIGMA=(--blur-sigma 0.5:1.5)  # every blurred run draws its sigma from 0.5-1.5 voxels
BLUR=(--blur-share 0.3 "${SIGMA[@]}")
if [[ $what == mr_blur || $what == all ]]; then fine_tune mr_blur mr "${BLUR[@]}"; fi
if [[ $what == blur || $what == all ]]; then fine_tune ct_blur ct "${BLUR[@]}"; fi
if [[ $what == blur_band || $what == all ]]; then fine_tune ct_blur_band ct "${BLUR[@]}" --banding-weight 100; fi
if [[ $what == blur15_band ]]; then
  fine_tune ct_blur15_band ct --blur-share 0.15 "${SIGMA[@]}" --banding-weight 100
fi
if [[ $what == inplane_band ]]; then
  fine_tune ct_inplane_band ct "${BLUR[@]}" --blur-axes inplane --banding-weight 100
fi
if [[ $what == inplane50_band ]]; then
  fine_tune ct_inplane50_band ct --blur-share 0.5 "${SIGMA[@]}" --blur-axes inplane --banding-weight 100
fi
if [[ $what == inplane80_band ]]; then
  fine_tune ct_inplane80_band ct --blur-share 0.8 "${SIGMA[@]}" --blur-axes inplane --banding-weight 100
fi
if [[ $what == inplane ]]; then fine_tune ct_inplane ct "${BLUR[@]}" --blur-axes inplane; fi
if [[ $what == mr_inplane50 ]]; then
  fine_tune mr_inplane50 mr --blur-share 0.5 "${SIGMA[@]}" --blur-axes inplane
fi
if [[ $what == control || $what == all ]]; then fine_tune ct_control ct; fi
