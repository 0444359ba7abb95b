"""Hubs for scan tests: copies of the small zoo, optionally with broken checkpoints added."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from dmsec.scan.config import ScanConfig, config_from_dict
from dmsec.scan.local import local_executor


def make_hub(root: Path, zoo: Any, names: list[str] | None = None) -> Path:
    """A local hub holding the zoo's base and fine-tunes `names` (default: all)."""
    keep = {"base", *(names or [e.name for e in zoo.fine_tunes])}
    root.mkdir(parents=True)
    for entry in zoo.entries:
        if entry.name in keep:
            shutil.copytree(zoo.root / entry.path, root / entry.path)
    return root


def add_truncated_lora(hub: Path, zoo: Any, name: str = "corrupt-lora") -> str:
    """A LoRA whose safetensors file lost its second half (caught when pulled)."""
    lora = next(e for e in zoo.fine_tunes if e.kind == "lora")
    folder = hub / name
    folder.mkdir()
    (folder / "dmsec_model.json").write_text(
        (zoo.root / lora.path / "dmsec_model.json").read_text()
    )
    data = (zoo.root / lora.path / "pytorch_lora_weights.safetensors").read_bytes()
    (folder / "pytorch_lora_weights.safetensors").write_bytes(data[: len(data) // 2])
    return name


def add_misfit_lora(hub: Path, name: str = "misfit-lora") -> str:
    """A well-formed LoRA file whose tensors fit no layer of the base (fails when loaded)."""
    folder = hub / name
    folder.mkdir()
    card = {"kind": "lora", "base_model": "../base", "null_class": 10, "instance_class": 11}
    (folder / "dmsec_model.json").write_text(json.dumps(card))
    tensors = {"base_model.model.nowhere.lora_A.weight": torch.zeros(4, 7)}
    save_file(tensors, folder / "pytorch_lora_weights.safetensors", metadata={"format": "pt"})
    return name


def scan_config(hub: Path, registry: Path, out: Path, cache: Path, **sections: dict[str, Any]) -> ScanConfig:  # fmt: skip
    """A scan config for tests: this hub, registry and results folder; `sections` override."""
    data: dict[str, Any] = {
        "source": {"uri": str(hub)},
        "registry": {"location": str(registry)},
        "pull": {"cache_dir": str(cache)},
        "results": {"out": str(out)},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)


class Crash(RuntimeError):
    """The machine (or pod) went away mid-scan."""


def crashing_after(n: int):
    """The local executor, raising `Crash` once `n` items have been yielded."""

    def executor(items, resolved, staging):
        for done, item in enumerate(local_executor(items, resolved, staging)):
            if done == n:
                raise Crash("the machine went away")
            yield item

    return executor
