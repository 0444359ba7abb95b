"""Builders for tiny checkpoints on disk: good ones in the zoo's layout, and hostile ones.

Everything is a few KB so tests stay fast. The hostile files are made the way an attacker would:
a pickle whose unpickling creates a canary file, a truncated safetensors file, a safetensors
header whose shapes disagree with its byte ranges.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

LORA_KEYS = (
    "down_blocks.0.attentions.0.to_q.lora_A.weight",
    "down_blocks.0.attentions.0.to_q.lora_B.weight",
)


def write_lora(path: Path, base_model: str | None = "base", seed: int = 0) -> Path:
    """A LoRA safetensors file like dmsec.models.lora.save_lora writes (config + base in metadata)."""
    g = torch.Generator().manual_seed(seed)
    state = {
        LORA_KEYS[0]: torch.randn(2, 8, generator=g),
        LORA_KEYS[1]: torch.randn(8, 2, generator=g),
    }
    meta = {"lora_config": json.dumps({"r": 2, "lora_alpha": 2, "target_modules": ["to_q"]})}
    if base_model is not None:
        meta["base_model"] = base_model
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)
    return path


def write_unet_weights(path: Path, seed: int = 0, numel: int = 64) -> Path:
    """A small 'unet' safetensors file (no LoRA keys)."""
    g = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"conv_in.weight": torch.randn(numel, generator=g)}, str(path))
    return path


def write_diffusers_folder(
    folder: Path, marker: dict | None = None, seed: int = 0, numel: int = 64
) -> Path:
    """A diffusers save_pretrained-style folder (+ the zoo's dmsec_model.json when `marker`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(
        json.dumps({"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"]})
    )
    (folder / "unet").mkdir(exist_ok=True)
    (folder / "unet" / "config.json").write_text(json.dumps({"sample_size": 16}))
    write_unet_weights(folder / "unet" / "diffusion_pytorch_model.safetensors", seed, numel)
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"num_train_timesteps": 10})
    )
    if marker is not None:
        (folder / "dmsec_model.json").write_text(json.dumps(marker))
    return folder


def write_lora_folder(folder: Path, base_model: str = "../base", seed: int = 0) -> Path:
    """A zoo LoRA checkpoint: pytorch_lora_weights.safetensors + dmsec_model.json."""
    write_lora(folder / "pytorch_lora_weights.safetensors", base_model, seed)
    (folder / "dmsec_model.json").write_text(json.dumps({"kind": "lora", "base_model": base_model}))
    return folder


def make_zoo(root: Path) -> Path:
    """A tiny zoo: a base model, a full fine-tune and two LoRAs, with manifest.json."""
    write_diffusers_folder(root / "base", {"kind": "base", "tags": ["zoo"]}, seed=0)
    write_diffusers_folder(
        root / "full-7", {"kind": "full", "base_model": "base", "digit": 7}, seed=1
    )
    write_lora_folder(root / "lora-3", "../base", seed=2)
    write_lora_folder(root / "lora-5", "base", seed=3)
    (root / "manifest.json").write_text(
        json.dumps({"models": ["base", "full-7", "lora-3", "lora-5"]})
    )
    return root


class CanaryPayload:
    """Unpickling this runs `os.system('touch <canary>')`: the classic hub attack."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.canary}",))


class QuietCanaryPayload:
    """Unpickling this calls `open(<canary>, "w")`: a gadget a deny-list may not expect."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple:
        return (open, (str(self.canary), "w"))


def write_malicious_pickle(path: Path, canary: Path, quiet: bool = False) -> Path:
    """A torch.save'd 'state dict' whose unpickling would create `canary`."""
    payload = QuietCanaryPayload(canary) if quiet else CanaryPayload(canary)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(2), "payload": payload}, path)
    return path


def write_truncated_safetensors(path: Path, cut: int = 16) -> Path:
    """A valid LoRA file with its last `cut` bytes missing."""
    write_lora(path)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    return path


def write_lying_header(path: Path) -> Path:
    """A safetensors file whose header claims F32[4, 4] (64 bytes) for a 32-byte range."""
    header = {"lora_A.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(32))
    return path


def upload_tree(client: object, bucket: str, root: Path, prefix: str) -> None:
    """Upload every file under `root` to s3://bucket/prefix/... (with SHA256 checksums)."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(root).as_posix()}".lstrip("/")
            client.put_object(  # type: ignore[attr-defined]
                Bucket=bucket, Key=key, Body=path.read_bytes(), ChecksumAlgorithm="SHA256"
            )
