"""Learning-curve extraction from training logs: gain over the better baseline, known values."""

from DPNSLCore.training.curves import main, read_gains


def test_gain_is_over_the_better_baseline(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(
        "step,time_s,loss,val_psnr_x2_dpnsl,val_psnr_x2_linear,val_psnr_x2_cubic\n"
        "10,60,0.1,,,\n"
        "20,120,0.1,31.0,30.0,30.5\n"
        "30,180,0.1,29.0,30.0,29.5\n"
    )
    assert read_gains(log) == {"x2": [(2.0, 0.5, 20), (3.0, -1.0, 30)]}
    assert main([str(log), "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000
