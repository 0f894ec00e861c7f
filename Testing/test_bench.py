"""The benchmark command: one row per method with its speed, memory, consistency and banding, as written."""

import numpy as np
import torch

from DPNSLCore.evaluation.bench import format_profile, main, time_method
from DPNSLCore.inference.tiling import TilingOptions
from DPNSLCore.io.volumes import Geometry, Volume, write_volume


def _thin_ct(tmp_path):
    z = np.arange(25, dtype=np.float64)[:, None, None]
    hu = 40 + 300 * np.sin(z / 2.3) * np.cos(np.arange(16)[None, :, None] / 3) + 5 * np.arange(16)[None, None, :]
    path = tmp_path / "thin.nrrd"
    write_volume(Volume(hu.astype(np.int16), Geometry(spacing=(0.8, 0.8, 1.0))), path)
    return path


def test_the_table_has_every_method_with_ratios_to_linear_and_its_banding(tmp_path, capsys):
    assert main([str(_thin_ct(tmp_path)), "--scale", "3", "--methods", "linear,cubic"]) == 0
    out = capsys.readouterr().out
    assert "observed (9, 16, 16) int16" in out and "output input" in out
    assert f", {torch.backends.cpu.get_cpu_capability()}), " in out.splitlines()[0]  # the processor it ran on
    rows = [line for line in out.splitlines() if line.startswith("| linear") or line.startswith("| cubic")]
    assert len(rows) == 2
    linear = rows[0].split("|")
    assert linear[4].strip() == "1.0" and linear[6].strip() == "0"  # time / linear; max |A x - y| of decimation
    assert all(cell.strip() not in ("", "–") for cell in rows[1].split("|")[7:9])  # periodicity, texture


def test_the_banding_is_measured_on_the_output_as_written_or_before_rounding():
    z = np.arange(13, dtype=np.float64)[:, None, None]
    lr = (100 * np.sin(z / 1.7) + 0.4 * np.arange(12)[None, :, None] + np.zeros((1, 1, 12))).astype(np.int16)
    cpu = torch.device("cpu")
    rounded = time_method(lr, 3.0, "cubic", cpu, TilingOptions(), 1)
    exact = time_method(lr, 3.0, "cubic", cpu, TilingOptions(), 1, output_dtype="float32")
    assert rounded["dtype"] == "int16" and exact["dtype"] == "float32"
    assert rounded["periodicity"] != exact["periodicity"]  # rounding to whole units moves the measure


def test_the_profile_says_where_each_methods_time_went(tmp_path):
    lr = np.random.default_rng(0).normal(40, 300, (8, 24, 24)).astype(np.int16)
    row = time_method(lr, 2, "lean", torch.device("cpu"), TilingOptions(), 1, spacing_zyx=(2.0, 1.0, 1.0),
                      profile=True)
    stages = row["stages"]
    assert {"calibration", "encoder", "upsampler", "decoder", "projection", "destripe", "bounds", "output",
            "write"} <= set(stages) and "network" not in stages  # the network is split into its parts
    assert sum(v for k, v in stages.items() if k != "write") <= row["seconds"] * 1.05 + 0.05
    base = time_method(lr, 2, "linear", torch.device("cpu"), TilingOptions(), 1, profile=True)
    assert set(base["stages"]) == {"interpolation", "output", "write"}
    table = format_profile([base, row], 0.5)
    assert "| read | 0.50 |" in table and "| encoder | – | – |" in table
    total = next(line for line in table.splitlines() if line.startswith("| **total**"))
    assert total.count("100 %") == 2  # each method's column sums to its own total (read counted once in each)
