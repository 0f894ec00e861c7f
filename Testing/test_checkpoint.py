"""Tests of model checkpoints (safetensors + JSON config): round trip and every error path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from DPNSLCore.models import (
    FORMAT_VERSION,
    build_model,
    load_checkpoint,
    preset,
    read_checkpoint_info,
    save_checkpoint,
)
from DPNSLCore.ops.operators import make_degradation


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(preset("lean").replace(degrees=(2, 4))).eval()


def _write_raw(path: Path, model, **metadata_changes) -> Path:
    metadata = {"format": "dpnsl", "format_version": str(FORMAT_VERSION), "config": model.config.to_json(),
                "extra": "{}"} | metadata_changes
    metadata = {k: v for k, v in metadata.items() if v is not None}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=metadata)
    return path


def test_round_trip_gives_identical_outputs(tmp_path: Path, model) -> None:
    path = save_checkpoint(model, tmp_path / "m.safetensors", extra={"epochs": 3, "psnr": 41.5})
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and not loaded.training
    deg = make_degradation("decimate", 3, n_lr=3)
    y = torch.rand(1, 1, 3, 9, 9)
    with torch.no_grad():
        a, b = model(y, deg), loaded(y, deg)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    info = read_checkpoint_info(path)
    assert info == {"config": model.config, "format_version": FORMAT_VERSION, "extra": {"epochs": 3, "psnr": 41.5}}
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left behind


def test_save_overwrites_atomically(tmp_path: Path, model) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old")
    save_checkpoint(model, path)
    assert read_checkpoint_info(path)["extra"] == {}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        load_checkpoint(path)


def test_missing_config(tmp_path: Path, model) -> None:
    path = _write_raw(tmp_path / "m.safetensors", model, config=None)
    with pytest.raises(ValueError, match="without a DPNSL model config"):
        load_checkpoint(path)


def test_unknown_config_key(tmp_path: Path, model) -> None:
    config = json.dumps(model.config.to_dict() | {"wings": 2})
    path = _write_raw(tmp_path / "m.safetensors", model, config=config)
    with pytest.raises(ValueError, match=r"invalid model config.*unknown model config keys \['wings'\]"):
        load_checkpoint(path)


def test_version_mismatch(tmp_path: Path, model) -> None:
    path = _write_raw(tmp_path / "m.safetensors", model, format_version="999")
    with pytest.raises(ValueError, match="format version '999'"):
        load_checkpoint(path)


def test_missing_and_unknown_keys_are_named(tmp_path: Path, model) -> None:
    other = preset("lean").replace(degrees=(2, 4), blocks=model.config.blocks + 1)
    path = _write_raw(tmp_path / "m.safetensors", model, config=other.to_json())
    last = model.config.blocks - 1
    with pytest.raises(ValueError, match=rf"missing keys \['estimator.encoder.body.{last + 1}\."):
        load_checkpoint(path)
    fewer = preset("lean").replace(degrees=(2, 4), blocks=model.config.blocks - 1)
    path = _write_raw(tmp_path / "m2.safetensors", model, config=fewer.to_json())
    with pytest.raises(ValueError, match=rf"unknown keys \['estimator.encoder.body.{last}\."):
        load_checkpoint(path)


def test_wrong_shapes_are_named(tmp_path: Path, model) -> None:
    other = model.config.replace(features=model.config.features * 2)
    path = _write_raw(tmp_path / "m.safetensors", model, config=other.to_json())
    with pytest.raises(ValueError, match=r"wrong shapes .*estimator.encoder.head.weight"):
        load_checkpoint(path)


def test_extra_must_be_json(tmp_path: Path, model) -> None:
    with pytest.raises(TypeError, match="`extra` must be JSON-serialisable"):
        save_checkpoint(model, tmp_path / "m.safetensors", extra={"when": object()})
    assert not list(tmp_path.iterdir())


def test_save_rejects_missing_folder_and_non_model(tmp_path: Path, model) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(model, tmp_path / "no" / "m.safetensors")
    with pytest.raises(TypeError, match="`model` must be a DPNSL model"):
        save_checkpoint(model.estimator, tmp_path / "m.safetensors")
