"""dpnsl batch: every file and DICOM series under a folder, a manifest written as it goes, a bad case recorded while
the batch goes on, a killed batch resumed without redoing finished cases, and two torchrun ranks (gloo, CPU) that
together do every case exactly once."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

from DPNSLCore.cli.batch import discover, main, read_manifest
from DPNSLCore.cli.upsample import main as upsample_main
from DPNSLCore.resources import SAMPLE_DATA_DIR


def _crop(path: Path, x0: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.ReadImage(str(SAMPLE_DATA_DIR / "ct_lung1_5mm_crop.nii.gz"))[x0:x0 + 24, 50:74, 5:11],
                    str(path))


@pytest.fixture
def archive(tmp_path) -> Path:
    """Five volumes in nested folders, a corrupt file, and a DICOM series folder."""
    root = tmp_path / "in"
    for i, rel in enumerate(["a.nii.gz", "b.nrrd", "sub/c.mha", "sub/deeper/d.nii.gz", "sub/e.nii"]):
        _crop(root / rel, 40 + 8 * i)
    (root / "sub" / "broken.nii.gz").write_bytes(b"not a volume")
    assert upsample_main([str(root / "a.nii.gz"), "-o", str(tmp_path / "dicom_series"), "--format", "dicom",
                          "--scale", "1.5", "--method", "linear", "--quiet"]) == 0
    (tmp_path / "dicom_series").rename(root / "series")
    return root


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_file_and_series_is_found_with_its_output_in_the_same_layout(archive, tmp_path):
    cases = discover(archive, tmp_path / "out")
    names = [c.name for c in cases]
    assert names[:6] == ["a.nii.gz", "b.nrrd", "series#" + names[2].split("#")[1], "sub/broken.nii.gz", "sub/c.mha",
                         "sub/deeper/d.nii.gz"] and names[6] == "sub/e.nii"
    outputs = {c.name: c.case.output.relative_to(tmp_path / "out").as_posix() for c in cases}
    assert outputs["sub/c.mha"] == "sub/c.nii.gz" and outputs["b.nrrd"] == "b.nii.gz"
    assert outputs[names[2]] == "series.nii.gz" and cases[2].case.series == names[2].split("#")[1]
    assert [c.case.output.name for c in discover(archive, tmp_path / "o", "dicom")][:2] == ["a", "b"]


def test_a_bad_case_is_recorded_and_the_batch_goes_on(archive, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(archive), str(out), "--scale", "2", "--method", "linear", "--quiet"]) == 1
    rows = {r["case"]: r for r in _rows(out)}
    assert len(rows) == 7 and rows["sub/broken.nii.gz"]["status"] == "failed"
    assert "could not read" in rows["sub/broken.nii.gz"]["error"]
    done = [r for r in rows.values() if r["status"] == "done"]
    assert len(done) == 6 and all(Path(r["output"]).exists() and Path(r["output"] + ".json").exists() for r in done)
    assert sitk.ReadImage(str(out / "sub" / "deeper" / "d.nii.gz")).GetSize()[2] == 11
    assert "6 done, 1 failed, 0 skipped" in capsys.readouterr().err


def test_a_killed_batch_resumes_without_redoing_finished_cases(archive, tmp_path):
    out = tmp_path / "out"
    (archive / "sub" / "broken.nii.gz").unlink()
    command = [sys.executable, "-m", "DPNSLCore.batch", str(archive), str(out), "--scale", "3", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if out.exists() and len(read_manifest(out)) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = read_manifest(out)
    assert 1 <= len(before) < 6, "kill the batch while cases remain"
    stamps = {name: os.stat(row["output"]).st_mtime_ns for name, row in before.items()}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{len(before)} done before, {6 - len(before)} to do" in result.stderr
    rows = _rows(out)
    assert sorted(r["case"] for r in rows) == sorted({r["case"] for r in rows}) and len(rows) == 6
    assert all(r["status"] == "done" for r in rows)
    assert all(os.stat(before[name]["output"]).st_mtime_ns == stamp for name, stamp in stamps.items())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_ranks_do_every_case_exactly_once(archive, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               "-m", "DPNSLCore.batch", str(archive), str(out), "--scale", "2", "--method", "linear", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode != 0  # the broken file failed on one rank; the other rank's cases are all done
    rows = _rows(out)  # merged by rank 0 after both ranks finished
    assert sorted(r["case"] for r in rows) == sorted(c.name for c in discover(archive, out))
    assert {r["rank"] for r in rows} == {"0", "1"}
    for rank in (0, 1):
        with open(out / f"manifest-rank{rank}.csv", newline="") as handle:
            mine = [r["case"] for r in csv.DictReader(handle)]
        assert len(mine) == len(set(mine)) and mine
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) == 6 and all(Path(r["output"]).exists() for r in done)
