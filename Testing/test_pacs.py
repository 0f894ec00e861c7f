"""--send: the derived series is stored on a real Orthanc that the test starts on localhost (temporary storage) and
stops after; skipped, with the reason, where Orthanc (Debian package orthanc) is not installed."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pydicom
import pytest
import SimpleITK as sitk

from DPNSLCore.cli.upsample import main
from DPNSLCore.io.pacs import parse_peer
from DPNSLCore.resources import SAMPLE_DATA_DIR

ORTHANC = shutil.which("Orthanc") or (shutil.which("/usr/sbin/Orthanc"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if ORTHANC is None:
        pytest.skip("Orthanc is not installed (Debian package orthanc; .ci/run installs it)")
    root = tmp_path_factory.mktemp("orthanc")
    dicom_port, http_port = _free_port(), _free_port()
    config = {"Name": "DPNSL test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
              "DicomAet": "ORTHANC", "DicomPort": dicom_port, "HttpPort": http_port, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "DicomCheckCalledAet": True, "Plugins": [],
              "DicomAlwaysAllowStore": True, "DicomAlwaysAllowEcho": True}
    (root / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/system", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.skip("Orthanc did not start")
                time.sleep(0.2)
        yield {"aet": "ORTHANC", "port": dicom_port, "http": http_port}
    finally:
        process.terminate()
        process.wait(timeout=30)


def _get(orthanc: dict, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{orthanc['http']}{path}", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def small_input(tmp_path) -> Path:
    path = tmp_path / "small.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(SAMPLE_DATA_DIR / "ct_lung1_5mm_crop.nii.gz"))[60:92, 50:82, 5:11], str(path))
    return path


def test_the_series_is_stored_on_the_pacs_and_the_run_says_what_it_accepted(orthanc, small_input, tmp_path, capsys):
    out = tmp_path / "out"
    peer = f"{orthanc['aet']}@127.0.0.1:{orthanc['port']}"
    assert main([str(small_input), "-o", str(out), "--format", "dicom", "--scale", "2", "--method", "linear",
                 "--quiet", "--send", peer]) == 0
    files = sorted(out.glob("*.dcm"))
    assert f"sent to {peer}: {len(files)} of {len(files)} instance(s) stored" in capsys.readouterr().out
    series_uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    stored = [s for s in _get(orthanc, "/series?expand") if s["MainDicomTags"]["SeriesInstanceUID"] == series_uid]
    assert len(stored) == 1 and len(stored[0]["Instances"]) == len(files)
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["send"]["stored"] == len(files) and record["send"]["failures"] == []


def test_a_pacs_that_does_not_answer_is_reported_and_the_files_are_kept(small_input, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(small_input), "-o", str(out), "--format", "dicom", "--scale", "2", "--method", "linear",
                 "--quiet", "--send", f"NOBODY@127.0.0.1:{_free_port()}"]) == 3
    assert "no DICOM association with NOBODY@127.0.0.1" in capsys.readouterr().err
    assert len(list(out.glob("*.dcm"))) == 11 and "error" in json.loads((tmp_path / "out.json").read_text())["send"]


def test_send_needs_a_dicom_output_and_a_well_formed_peer(small_input, tmp_path, capsys):
    assert main([str(small_input), "-o", str(tmp_path / "x.nii.gz"), "--scale", "2", "--send", "A@b:1"]) == 2
    assert "--send stores a DICOM series: add --format dicom" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must be AET@host:port"):
        parse_peer("pacs:4242")
    assert not (tmp_path / "x.nii.gz").exists()
