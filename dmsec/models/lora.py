"""LoRA adapters through peft: adapter off = the pretrained model, adapter on = the fine-tune.

File format: one `pytorch_lora_weights.safetensors` holding peft's state dict (keys such as
`down_blocks.0.resnets.0.conv1.lora_A.weight`, as diffusers' `save_lora_adapter` writes them
without a prefix) and, in the safetensors `__metadata__`, `lora_config` (the peft LoraConfig as
JSON) and `base_model`. Files without the metadata get rank and targets inferred from the keys.
`inject_lora_state` injects a state dict in the PEFT / diffusers layout (diffusers'
`save_lora_weights` prefixes `unet.` / `text_encoder.` included; other layouts are converted to
it by their format module, `dmsec.models.formats`); a text-encoder part is injected into the text
encoder, and peft's `disable_adapters` then switches both parts off together (`pair.LoraPair`).

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
from dmsec.models.weights import LORA_WEIGHTS_NAME

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


def inject_lora_state(
    handle: Any,
    state: dict[str, torch.Tensor],
    path: Path,
    config: LoraConfig | None = None,
    name: str = "default",
) -> Any:
    """Inject a LoRA state dict in the PEFT / diffusers layout into `handle` (in place).

    Unprefixed and `unet.` keys go into `handle.network` (with `config`, e.g. from the file's
    metadata, else ranks inferred per module), `text_encoder.` keys into `handle.text_encoder`;
    keys for components the handle lacks are a `CheckpointError` naming them. The caller has
    told the layout (`dmsec.models.formats`) and converted other layouts (kohya) first.
    """
    text_encoder = getattr(handle, "text_encoder", None)
    parts = lora_parts(state, text_encoder, path)
    config = config if "" in parts else None
    _inject(handle.network, parts.pop("unet", {}) | parts.pop("", {}), config, name, path, unet=True)  # fmt: skip
    if "text_encoder" in parts and text_encoder is not None:
        _inject(text_encoder, parts.pop("text_encoder"), None, name, path, unet=False)
    if parts:
        raise CheckpointError(
            path, f"LoRA weights for components this base model lacks: {sorted(parts)}"
        )
    return handle


def lora_parts(
    state: dict[str, torch.Tensor], text_encoder: nn.Module | None, path: Path
) -> dict[str, dict[str, torch.Tensor]]:
    """Split a LoRA state dict by component, each in PEFT layout (`*.lora_A.weight`).

    Keys prefixed `unet.`, `text_encoder.`, `text_encoder_2.` go to those components; unprefixed
    keys (dmsec's own files) are the UNet's, under "". Other spellings — diffusers' training
    scripts' (`*.lora.down.weight`, CLIP's `*.lora_linear_layer.*`, mixed with `lora_A/B`) and
    older diffusers' — are converted with diffusers' `convert_unet_state_dict_to_peft` /
    `convert_state_dict_to_peft`.
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
        # diffusers' training scripts save a mix (`to_q.lora.down` beside `proj_in.lora_A`), so a
        # part is in peft's spelling only if every key is; diffusers' converters leave those keys
        peft = all(".lora_A." in k or ".lora_B." in k for k in part)
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


def config_from_metadata(meta: dict[str, str]) -> LoraConfig | None:
    """The peft `LoraConfig` a file's safetensors metadata carries (`lora_config`), or None."""
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
