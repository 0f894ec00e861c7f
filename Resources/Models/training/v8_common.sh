# The recipe of the v8 MR fine-tunes (sourced by mr_intensity_v8.sh and Resources/Results/v9/gamma/gamma.sh): the
# shipped MR model (v4) on its own joint CT + MR data and recipe (gain loss, mix of decimation and box profiles,
# scales 1.5-7), 1000 steps at lr 2.5e-4 halved every 350 steps, seed 3, on the CPU.
D=${DATA:-../shared/data}
COMMON=(--preset lean --anchor cubic --projection spline --degradation mix --thickness 0.75:1.5
        --decimate-share 0.4 --scales 1.5:7 --val-scales 2,4 --crop 40:64 --batch-size 8 --val-every 250
        --workers 1 --seed 3 --quiet --loss gain --lr 2.5e-4 --steps 1000 --lr-step 350 --device cpu)
CT=($D/ct_chest_abdomen_1mm.nii.gz $D/ct_lung1_5mm.nii.gz)
MR=($D/mr_ms_patient07_{t1,t2,flair}_1mm.nii.gz $D/mr_ms_patient19_{t1,t2,flair}_1mm.nii.gz $D/mr_brain_t1_1mm.nii.gz
    $D/mr_ms_patient01_study1_t2w_thick.nii.gz $D/mr_brain1_t1c_6p5mm.nii.gz)
INIT=DPNSLCore/resources/models/dpnsl_mr.safetensors
