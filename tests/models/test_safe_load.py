"""Loading untrusted checkpoint files: safetensors validated, pickles refused or scanned."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dmsec.errors import CheckpointError, UnsafeCheckpointError
from dmsec.models import safe_load
from dmsec.models.safe_load import (
    is_pickle_file,
    load_state_dict,
    read_safetensors_header,
    safetensors_metadata,
    scan_pickle,
)


class _SystemPayload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.canary}",))


class _OpenPayload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple:
        return (open, (str(self.canary), "w"))


def _raw_safetensors(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4)}, str(path), {"k": "v"})
    return path


@pytest.fixture(params=[_SystemPayload, _OpenPayload], ids=["os.system", "builtins.open"])
def evil(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """(malicious torch.save file, canary path its unpickling would create)."""
    canary = tmp_path / "canary"
    path = tmp_path / "evil.bin"
    torch.save({"weight": torch.zeros(2), "x": request.param(canary)}, path)
    return path, canary


def test_good_safetensors_loads_with_metadata(good_file: Path) -> None:
    state = load_state_dict(good_file)
    assert torch.equal(state["a"], torch.arange(6.0).reshape(2, 3))
    assert safetensors_metadata(good_file) == {"k": "v"}
    assert set(read_safetensors_header(good_file)) == {"a", "b", "__metadata__"}


def test_truncated_safetensors_is_a_clear_error(good_file: Path) -> None:
    good_file.write_bytes(good_file.read_bytes()[:-8])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state_dict(good_file)


def test_header_lying_about_tensor_size_is_refused(tmp_path: Path) -> None:
    header = {"t": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}
    path = _raw_safetensors(tmp_path / "liar.safetensors", header, bytes(32))
    with pytest.raises(CheckpointError, match=r"F32\[4, 4\] \(64 bytes\).*holds 32"):
        load_state_dict(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}, "invalid shape"),
        ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, "invalid shape"),
        ({"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}, "unknown dtype"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}, "malformed"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}, "invalid data offsets"),
        ([1, 2], "malformed"),
    ],
)
def test_malformed_header_entries_are_checkpoint_errors(
    tmp_path: Path, entry: object, message: str
) -> None:
    path = _raw_safetensors(tmp_path / "bad.safetensors", {"t": entry}, bytes(16))
    with pytest.raises(CheckpointError, match=message):
        read_safetensors_header(path)


def test_duplicate_tensor_names_are_refused(tmp_path: Path) -> None:
    raw = b'{"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    raw += b" " * (-len(raw) % 8)
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\x00")
    with pytest.raises(CheckpointError, match="duplicate keys"):
        read_safetensors_header(path)


def test_metadata_must_map_strings_to_strings(tmp_path: Path) -> None:
    header = {"__metadata__": {"n": 3}, "t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    path = _raw_safetensors(tmp_path / "meta.safetensors", header, b"\x00")
    with pytest.raises(CheckpointError, match="__metadata__"):
        read_safetensors_header(path)


def test_size_cap_applies_before_reading(good_file: Path) -> None:
    with pytest.raises(UnsafeCheckpointError, match="over the cap"):
        load_state_dict(good_file, max_bytes=16)


def test_payload_is_live_control(evil: tuple[Path, Path]) -> None:
    """Control: unpickling the file for real (in a child process) does create the canary.

    Without this the canary tests below could pass because the payload was inert.
    """
    path, canary = evil
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert canary.exists()


def test_malicious_pickle_refused_without_opt_in(evil: tuple[Path, Path]) -> None:
    path, canary = evil
    with pytest.raises(UnsafeCheckpointError, match="pickle-format checkpoint refused"):
        load_state_dict(path)
    assert not canary.exists()


def test_malicious_pickle_refused_by_scan_with_opt_in(evil: tuple[Path, Path]) -> None:
    path, canary = evil
    with pytest.raises(UnsafeCheckpointError, match="outside the allow-list"):
        load_state_dict(path, allow_pickle=True)
    assert not canary.exists()


def test_weights_only_still_refuses_when_the_scan_is_bypassed(
    evil: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: a scanner bypass still meets torch.load(weights_only=True)."""
    path, canary = evil
    monkeypatch.setattr(safe_load, "scan_pickle", lambda *a, **k: [])
    with pytest.raises(UnsafeCheckpointError, match="weights_only=True"):
        load_state_dict(path, allow_pickle=True)
    assert not canary.exists()


def test_benign_pickle_loads_only_with_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "ok.pt"
    torch.save({"w": torch.arange(3.0), "h": torch.ones(2, dtype=torch.float16)}, path)
    with pytest.raises(UnsafeCheckpointError):
        load_state_dict(path)
    assert scan_pickle(path)  # lists the (allow-listed) globals it found
    state = load_state_dict(path, allow_pickle=True)
    assert torch.equal(state["w"], torch.arange(3.0))


@pytest.mark.parametrize("content", [b"", os.urandom(64)], ids=["empty", "garbage"])
def test_unparseable_pickle_is_refused_not_crashed(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weird.ckpt"
    path.write_bytes(content)
    with pytest.raises(UnsafeCheckpointError):
        load_state_dict(path, allow_pickle=True)


def test_pickle_holding_non_tensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nested.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "epoch": 3}, path)
    with pytest.raises(CheckpointError):
        load_state_dict(path, allow_pickle=True)


def test_format_detection_by_suffix(tmp_path: Path) -> None:
    assert (
        is_pickle_file("a.CKPT") and is_pickle_file("b.bin") and not is_pickle_file("c.safetensors")
    )
    other = tmp_path / "x.onnx"
    other.write_bytes(b"\x00" * 8)
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_state_dict(other)
