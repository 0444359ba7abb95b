"""LoRA adapters through peft: adapter off = the pretrained model, adapter on = the fine-tune.

File format: one `pytorch_lora_weights.safetensors` holding peft's state dict (keys such as
`down_blocks.0.resnets.0.conv1.lora_A.weight`, as diffusers' `save_lora_adapter` writes them
without a prefix) and, in the safetensors `__metadata__`, `lora_config` (the peft LoraConfig as
JSON) and `base_model`. Files without the metadata get rank and targets inferred from the keys.

`mixed_adapter_batch` runs one forward where some samples see the adapter and others do not
(peft's per-sample `adapter_names`, with "__base__" meaning no adapter) — how a LoRA pair
computes ε_pre and ε_ft in one batched call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import (
    LoraConfig,
    get_peft_model_state_dict,
    inject_adapter_in_model,
    set_peft_model_state_dict,
)
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import save_file
from torch import nn

from dmsec.errors import CheckpointError, ConfigError
from dmsec.models.safe_load import load_state_dict, safetensors_metadata

LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2", "time_emb_proj")


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA adapter's shape: rank, scaling alpha and which modules (by name suffix) it wraps."""

    rank: int = 8
    alpha: float = 8.0
    target_modules: tuple[str, ...] = field(default=DEFAULT_TARGETS)

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"`rank` must be >= 1; got {self.rank}")
        if not self.target_modules:
            raise ConfigError("`target_modules` must name at least one module")

    def peft_config(self, init_random: bool = False) -> LoraConfig:
        # init_random=True gives a non-zero up matrix, so a fresh adapter is not a no-op (tests).
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,  # type: ignore[arg-type]  # peft accepts floats
            target_modules=list(self.target_modules),
            init_lora_weights=not init_random,
        )


def add_lora(
    network: nn.Module, spec: LoraSpec, name: str = "default", init_random: bool = False
) -> nn.Module:
    """Inject a trainable LoRA adapter into `network` in place; base weights stay untouched."""
    inject_adapter_in_model(spec.peft_config(init_random), network, adapter_name=name)
    return network


def lora_parameters(network: nn.Module) -> list[nn.Parameter]:
    """The adapter's trainable parameters (lora_A / lora_B of every wrapped layer)."""
    return [p for n, p in network.named_parameters() if "lora_" in n]


def save_lora(network: nn.Module, path: str | Path, base_model: str, name: str = "default") -> Path:
    """Write the adapter as one safetensors file with its config and base model in the metadata."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / LORA_WEIGHTS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(network, adapter_name=name)
    config = _adapter_config(network, name)
    meta = {
        "format": "pt",
        "lora_config": json.dumps(config.to_dict(), default=list, sort_keys=True),
        "base_model": base_model,
    }
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path), metadata=meta
    )
    return path


def _adapter_config(network: nn.Module, name: str) -> LoraConfig:
    for module in network.modules():
        if isinstance(module, BaseTunerLayer) and name in getattr(module, "r", {}):
            config = getattr(network, "peft_config", {}).get(name)
            if config is not None:
                return config
            break
    raise ConfigError(f"network has no LoRA adapter named {name!r}")


def is_lora_file(path: str | Path) -> bool:
    """True when a safetensors file holds LoRA weights (by its keys)."""
    from dmsec.models.safe_load import read_safetensors_header

    header = read_safetensors_header(path)
    return any(
        ".lora_" in k or "lora_A" in k or "lora_down" in k for k in header if k != "__metadata__"
    )


def load_lora(network: nn.Module, path: str | Path, name: str = "default") -> nn.Module:
    """Inject the adapter stored at `path` into `network` (in place) and load its weights."""
    path = Path(path)
    if path.is_dir():
        path = path / LORA_WEIGHTS_NAME
    state = load_state_dict(path)
    if any("lora_down" in k for k in state):
        raise CheckpointError(
            path, "kohya-style LoRA keys (lora_down/lora_up) are not supported yet"
        )
    meta = safetensors_metadata(path)
    config = _config_from_metadata(meta) or _infer_config(state, path)
    inject_adapter_in_model(config, network, adapter_name=name)
    result = set_peft_model_state_dict(network, state, adapter_name=name)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise CheckpointError(
            path, f"LoRA keys match no module of the base model: {unexpected[:3]}"
        )
    try:
        _check_loaded(network, state, name, path)
    except RuntimeError as exc:
        raise CheckpointError(path, str(exc)) from None
    return network


def _config_from_metadata(meta: dict[str, str]) -> LoraConfig | None:
    raw = meta.get("lora_config") or meta.get("lora_adapter_metadata")
    if not raw:
        return None
    data = json.loads(raw)
    keep = {
        "r",
        "lora_alpha",
        "target_modules",
        "lora_dropout",
        "bias",
        "use_dora",
        "rank_pattern",
        "alpha_pattern",
    }
    return LoraConfig(**{k: v for k, v in data.items() if k in keep})


def _infer_config(state: dict[str, torch.Tensor], path: Path) -> LoraConfig:
    a_keys = [k for k in state if k.endswith("lora_A.weight")]
    if not a_keys:
        raise CheckpointError(path, "no lora_A weights found")
    rank = int(state[a_keys[0]].shape[0])
    targets = sorted({re.sub(r"\.lora_A\.weight$", "", k) for k in a_keys})
    return LoraConfig(r=rank, lora_alpha=rank, target_modules=targets)


def _check_loaded(
    network: nn.Module, state: dict[str, torch.Tensor], name: str, path: Path
) -> None:
    params = dict(network.named_parameters())
    for key, value in state.items():
        full = key.replace(".weight", f".{name}.weight") if ".lora_" in key else key
        if full in params and params[full].shape != value.shape:
            raise CheckpointError(
                path, f"{key}: shape {tuple(value.shape)} != expected {tuple(params[full].shape)}"
            )


def tuner_layers(network: nn.Module) -> list[BaseTunerLayer]:
    return [m for m in network.modules() if isinstance(m, BaseTunerLayer)]


def has_lora(network: nn.Module) -> bool:
    return bool(tuner_layers(network))


@contextmanager
def adapters_disabled(network: nn.Module) -> Iterator[nn.Module]:
    """Within the block the network computes as if it had no adapter (the pretrained model)."""
    layers = tuner_layers(network)
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield network
    finally:
        for layer in layers:
            layer.enable_adapters(True)


@contextmanager
def mixed_adapter_batch(network: nn.Module, adapter_names: Sequence[str]) -> Iterator[nn.Module]:
    """Within the block, sample i of every forward uses adapter `adapter_names[i]` ("__base__": none)."""
    names = list(adapter_names)

    def inject(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        kwargs["adapter_names"] = names
        return args, kwargs

    layers: list[Any] = tuner_layers(network)
    hooks = [layer.register_forward_pre_hook(inject, with_kwargs=True) for layer in layers]
    try:
        yield network
    finally:
        for hook in hooks:
            hook.remove()
