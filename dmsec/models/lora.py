"""LoRA adapters through peft: adapter off = the pretrained model, adapter on = the fine-tune.

File format: one `pytorch_lora_weights.safetensors` holding peft's state dict (keys such as
`down_blocks.0.resnets.0.conv1.lora_A.weight`, as diffusers' `save_lora_adapter` writes them
without a prefix) and, in the safetensors `__metadata__`, `lora_config` (the peft LoraConfig as
JSON) and `base_model`. Files without the metadata get rank and targets inferred from the keys.
`load_lora` also reads the layouts hubs carry: diffusers' `save_lora_weights` (`unet.` /
`text_encoder.` prefixes) and kohya's (`lora_unet_*` / `lora_te_*`, converted by
`dmsec.models.kohya`); a text-encoder part is injected into the text encoder, and peft's
`disable_adapters` then switches both parts off together (see `pair.LoraPair`).

`mixed_adapter_batch` runs one forward where some samples see the adapter and others do not
(peft's per-sample `adapter_names`, with "__base__" meaning no adapter) — how a LoRA pair
computes ε_pre and ε_ft in one batched call.
"""

from __future__ import annotations

import json
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

# Named target sets (`dmsec finetune --lora-targets`). "attn": every Linear of the transformer
# blocks (attention projections, feed-forward, proj_in/proj_out), kohya's SD 1.x default and the
# art zoo's; "all": those plus the resnets' convolutions and time-embedding projections.
ATTN_TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out",
)  # fmt: skip
LORA_TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "attn": ATTN_TARGETS,
    "all": (*ATTN_TARGETS, "conv1", "conv2", "time_emb_proj"),
}


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
    """True when a safetensors file holds adapter weights of any layout (by its tensor names)."""
    from dmsec.models.detect import detect_file

    return detect_file(path).is_lora


def load_lora(
    network: nn.Module,
    path: str | Path,
    name: str = "default",
    text_encoder: nn.Module | None = None,
) -> nn.Module:
    """Inject the adapter stored at `path` into `network` (in place) and load its weights.

    Layouts: dmsec's / PEFT's (unprefixed UNet keys, config in the metadata), diffusers'
    `save_lora_weights` (`unet.` / `text_encoder.` prefixes) and kohya's (`lora_unet_*`,
    `lora_te_*`, see `dmsec.models.kohya`). A text-encoder part goes into `text_encoder`.
    """
    from dmsec.models.detect import (
        NotDiffusionWeightsError,
        UnsupportedAdapterError,
        weights_format,
    )

    path = Path(path)
    if path.is_dir():
        path = path / LORA_WEIGHTS_NAME
    state = load_state_dict(path)
    detected = weights_format(state)
    if detected.format == "unsupported":
        raise UnsupportedAdapterError(path, detected.reason)
    if detected.format == "other":
        raise NotDiffusionWeightsError(path, detected.reason)
    if detected.format == "kohya-lora":
        from dmsec.models.kohya import kohya_to_diffusers

        state = kohya_to_diffusers(state, getattr(network, "config", None), path)
    parts = lora_parts(state, text_encoder, path)
    meta = safetensors_metadata(path)
    config = _config_from_metadata(meta) if "" in parts else None
    _inject(network, parts.pop("unet", {}) | parts.pop("", {}), config, name, path, unet=True)
    if "text_encoder" in parts and text_encoder is not None:
        _inject(text_encoder, parts.pop("text_encoder"), None, name, path, unet=False)
    if parts:
        raise CheckpointError(
            path, f"LoRA weights for components this base model lacks: {sorted(parts)}"
        )
    return network


def lora_parts(
    state: dict[str, torch.Tensor], text_encoder: nn.Module | None, path: Path
) -> dict[str, dict[str, torch.Tensor]]:
    """Split a LoRA state dict by component, each in PEFT layout (`*.lora_A.weight`).

    Keys prefixed `unet.`, `text_encoder.`, `text_encoder_2.` go to those components; unprefixed
    keys (dmsec's own files) are the UNet's, under "". Older diffusers spellings are converted with
    diffusers' `convert_unet_state_dict_to_peft` / `convert_state_dict_to_peft`.
    """
    from diffusers.utils.state_dict_utils import (
        StateDictType,
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )

    prefixes = ("unet", "text_encoder", "text_encoder_2")
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        component = head if head in prefixes and rest else ""
        parts.setdefault(component, {})[rest if component else key] = value
    for component, part in parts.items():
        peft = any(".lora_A." in k or ".lora_B." in k for k in part)
        if component.startswith("text_encoder") and not peft:
            # the types are given: diffusers' guess from one key misses files without out_proj
            part = convert_state_dict_to_diffusers(part, StateDictType.DIFFUSERS_OLD)
            part = convert_state_dict_to_peft(part, StateDictType.DIFFUSERS)
        if component.startswith("text_encoder"):
            if text_encoder is not None and not hasattr(text_encoder, "text_model"):
                part = {k.removeprefix("text_model."): v for k, v in part.items()}  # flat CLIP
        elif not peft:
            part = convert_unet_state_dict_to_peft(part)
        parts[component] = part
    if "text_encoder" in parts and text_encoder is None:
        raise CheckpointError(
            path, "has text-encoder LoRA weights but the base has no text encoder"
        )
    return parts


def _inject(
    network: nn.Module,
    state: dict[str, torch.Tensor],
    config: LoraConfig | None,
    name: str,
    path: Path,
    unet: bool,
) -> None:
    """Inject a LoRA (config given, or inferred per module from the weights) and load it."""
    if not state:
        return
    config = config or _infer_config(state, path, unet)
    try:
        inject_adapter_in_model(config, network, adapter_name=name)
        result = set_peft_model_state_dict(network, state, adapter_name=name)
    except (ValueError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CheckpointError(path, f"LoRA does not fit the base model: {first}") from None
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise CheckpointError(
            path, f"LoRA keys match no module of the base model: {unexpected[:3]}"
        )
    _check_loaded(network, state, name, path)


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


def _infer_config(state: dict[str, torch.Tensor], path: Path, unet: bool) -> LoraConfig:
    """Rank per module from the B matrices, scale 1 (alpha = rank): diffusers' `get_peft_kwargs`."""
    from diffusers.utils.peft_utils import get_peft_kwargs

    # "^" anchors a module's pattern at the start of its name, as diffusers does for UNets
    anchor = "^" if unet else ""
    ranks = {
        f"{anchor}{k}": int(v.shape[1]) for k, v in state.items() if ".lora_B." in k and v.ndim > 1
    }
    if not ranks:
        raise CheckpointError(path, "no lora_B weights found")
    return LoraConfig(**get_peft_kwargs(ranks, None, state, is_unet=unet))


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
