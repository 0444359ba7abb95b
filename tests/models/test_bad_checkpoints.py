"""Bad input gives a clear CheckpointError naming the file and the problem, never a deep traceback."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from dmsec.errors import CheckpointError, UnsafeCheckpointError
from dmsec.models.loading import load_model


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as info:
        load_model(tmp_path / "nope")
    assert "nope" in str(info.value)


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a diffusers model folder"):
        load_model(tmp_path / "empty")


def test_corrupt_weights_file(tiny_unet, tmp_path):
    folder = tiny_unet.save(tmp_path / "m")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError) as info:
        load_model(folder)
    assert "diffusion_pytorch_model.safetensors" in str(info.value)


def test_corrupt_config(tiny_unet, tmp_path):
    folder = tiny_unet.save(tmp_path / "m")
    (folder / "unet" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(folder)


def test_pickle_file_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    canary = tmp_path / "canary"

    class Evil:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    path.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        load_model(path)
    assert not canary.exists()


def test_tensor_of_the_wrong_shape(tiny_unet, tmp_path):
    base = tiny_unet.save(tmp_path / "base")
    state = {k: v.clone() for k, v in tiny_unet.network.state_dict().items()}
    state["conv_in.weight"] = torch.zeros(3, 3, 3, 3)
    save_file(state, str(tmp_path / "ft.safetensors"))
    with pytest.raises(CheckpointError, match="conv_in.weight") as info:
        load_model(tmp_path / "ft.safetensors", base=base)
    assert "ft.safetensors" in str(info.value) and "shape" in str(info.value)


def test_fine_tune_weights_without_base(tiny_unet, tmp_path):
    path = tiny_unet.save_single_file(tmp_path / "ft.safetensors")
    with pytest.raises(CheckpointError, match="base model"):
        load_model(path)


def test_wrong_architecture_in_folder(tiny_unet, tmp_path):
    folder = tiny_unet.save(tmp_path / "m")
    config = json.loads((folder / "unet" / "config.json").read_text())
    config["block_out_channels"] = [16, 32]
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape|do not fit"):
        load_model(folder)
