# The recipe of the v5 fine-tunes (sourced by blur_v5.sh; its banding-only runs, banding_v5.sh, are in git history): the v4 joint CT+MR data
# and the v4 recipe, 1000 steps from the shipped v4 weights at lr 3e-4 halved every 350 steps, seed 2.
D=${DATA:-../shared/data}
V4=Resources/Models/training/v4
COMMON=(--preset lean --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5
        --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --val-every 250
        --workers 1 --seed 2 --quiet --loss gain --lr 3e-4 --steps 1000 --lr-step 350)
DATASET=($D/ct_chest_abdomen_1mm.nii.gz $D/ct_lung1_5mm.nii.gz
         $D/mr_ms_patient07_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient19_{t1,t2,flair}_1mm.nii.gz $D/mr_brain_t1_1mm.nii.gz
         $D/mr_ms_patient01_study1_t2w_thick.nii.gz $D/mr_brain1_t1c_6p5mm.nii.gz)

fine_tune() {  # fine_tune NAME ct|mr [OPTION...]: a v5 run from the shipped v4 CT or MR weights into runs/NAME
  local name=$1 init=$V4/joint_ct_run/last.safetensors
  [[ $2 == mr ]] && init=$V4/joint_run/last.safetensors
  shift 2
  python -m DPNSLCore.train --data "${DATASET[@]}" --modality auto --init $init "${COMMON[@]}" "$@" --out runs/$name
}
