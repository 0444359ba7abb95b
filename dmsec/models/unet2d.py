"""Handle for pixel-space `UNet2DModel`s: unconditional or class-conditional (the tiny zoo).

Class-conditional models reserve class ids: `null_class` is ∅ (trained by dropping labels, for
classifier-free guidance) and `instance_class` is the never-pretrained "rare token" a fine-tune
binds its images to, like DreamBooth's "sks".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from safetensors.torch import save_file

from dmsec.errors import ConfigError
from dmsec.models.base import Condition, DiffusionModel
from dmsec.models.schedule import alphas_cumprod, save_scheduler

MODEL_CARD = "dmsec_model.json"


@dataclass(frozen=True)
class ModelInfo:
    """What dmsec records about a model folder beside the diffusers files (`dmsec_model.json`)."""

    kind: str = "base"  # base | full | lora
    base_model: str | None = None
    null_class: int | None = None
    instance_class: int | None = None
    instance_prompt: str | None = None
    extra: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("base", "full", "lora"):
            raise ConfigError(f"`kind` must be base, full or lora; got {self.kind!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def tiny_unet_config(
    image_size: int = 16,
    channels: Sequence[int] = (32, 64, 64),
    num_class_embeds: int | None = 12,
    in_channels: int = 1,
) -> dict[str, Any]:
    """UNet2DModel config for the zoo: attention only in the lowest block, one layer per block."""
    n = len(channels)
    return {
        "sample_size": image_size,
        "in_channels": in_channels,
        "out_channels": in_channels,
        "block_out_channels": list(channels),
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D"] * (n - 1) + ["AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D"] + ["UpBlock2D"] * (n - 1),
        "num_class_embeds": num_class_embeds,
        "norm_num_groups": 8,
        "attention_head_dim": 8,
    }


class UNet2DHandle(DiffusionModel):
    """A pixel-space UNet2DModel with its schedule; conditions are class ids or None (∅)."""

    family = "unet2d"

    def __init__(
        self,
        network: Any,
        schedule: dict[str, Any] | None = None,
        info: ModelInfo | None = None,
    ) -> None:
        self.network = network
        self.schedule = dict(schedule or {})
        self.alphas_cumprod = alphas_cumprod(self.schedule).to(next(network.parameters()).device)
        self.info = info or ModelInfo()
        num_classes = network.config.num_class_embeds
        null = self.info.null_class
        if num_classes is not None and null is not None and not 0 <= null < num_classes:
            raise ConfigError(f"`null_class` must be in [0, {num_classes}); got {null}")

    @classmethod
    def random(cls, seed: int = 0, info: ModelInfo | None = None, **config: Any) -> UNet2DHandle:
        """A random-init handle from `tiny_unet_config(**config)` (tests and training from scratch)."""
        torch.manual_seed(seed)
        cfg = tiny_unet_config(**config)
        if info is None and cfg["num_class_embeds"]:
            info = ModelInfo(
                null_class=cfg["num_class_embeds"] - 2, instance_class=cfg["num_class_embeds"] - 1
            )
        return cls(UNet2DModel.from_config(cfg).eval(), info=info)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        size = self.network.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        return (self.network.config.in_channels, *size)

    @property
    def conditional(self) -> bool:
        return self.network.config.num_class_embeds is not None

    def encode_condition(self, conditions: Sequence[Condition]) -> torch.Tensor | None:
        if not self.conditional:
            if any(c is not None for c in conditions):
                raise ConfigError("this model is unconditional; conditions must all be None")
            return None
        num_classes = self.network.config.num_class_embeds
        ids = []
        for c in conditions:
            if c is None:
                if self.info.null_class is None:
                    raise ConfigError("this model has no null class; give a class id")
                c = self.info.null_class
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num_classes:
                raise ConfigError(
                    f"class condition must be an int in [0, {num_classes}); got {c!r}"
                )
            ids.append(c)
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def concat_conditions(
        self, a: torch.Tensor | None, b: torch.Tensor | None
    ) -> torch.Tensor | None:
        if a is None and b is None:
            return None
        assert a is not None and b is not None, "cannot mix conditional and unconditional batches"
        return torch.cat([a, b])

    def predict_noise(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None
    ) -> torch.Tensor:
        t = t.expand(x_t.shape[0]) if t.ndim == 0 else t
        return self.network(x_t, t, class_labels=cond).sample

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, self.dtype) * 2 - 1

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        return ((x0.float() + 1) / 2).clamp(0, 1)

    def save(self, folder: str | Path, info: ModelInfo | None = None) -> Path:
        """Write a diffusers-format folder: model_index.json, unet/ (safetensors), scheduler/."""
        folder = Path(folder)
        (folder / "unet").mkdir(parents=True, exist_ok=True)
        self.network.save_pretrained(str(folder / "unet"), safe_serialization=True)
        save_scheduler(folder, self.schedule)
        index = {
            "_class_name": "DDPMPipeline",
            "_diffusers_version": _diffusers_version(),
            "unet": ["diffusers", "UNet2DModel"],
            "scheduler": ["diffusers", "DDPMScheduler"],
        }
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))
        (folder / MODEL_CARD).write_text((info or self.info).to_json())
        return folder

    def save_single_file(self, path: str | Path) -> Path:
        """Write the UNet weights as one `.safetensors` file (the form Civitai-style hubs serve)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.network.state_dict().items()}
        save_file(state, str(path), metadata={"format": "pt", "dmsec_info": self.info.to_json()})
        return path


def _diffusers_version() -> str:
    import diffusers

    return str(diffusers.__version__)
