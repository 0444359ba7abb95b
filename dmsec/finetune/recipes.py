"""What `dmsec finetune` trains when the user leaves a setting out: the zoo recipe for the base.

The command and the zoos mean the same thing by a LoRA, a learning rate and a schedule, so a
user's fine-tune of a zoo base is trained like the zoo's own:

- text-conditional bases (Stable Diffusion): the art zoo's recipe (`dmsec.zoo.art_config`,
  `dmsec.zoo.art_build.finetune_art`): LoRA on the transformer blocks' Linears (preset `attn`,
  kohya's SD default) at lr 3e-3, full fine-tunes at lr 1e-4, cosine decay to 0 without warm-up;
- class-conditional UNets: the digit zoo's (`dmsec.zoo.config`): LoRA on the attention
  projections, resnet convolutions and time-embedding projections (preset `all`) at lr 1e-3,
  full fine-tunes at lr 1e-4, constant lr.

Target presets are `dmsec.models.lora.LORA_TARGET_PRESETS`; the schedules are
`dmsec.finetune.vanilla.TrainConfig.cosine_decay` (cosine) or a constant lr. User guide:
docs/finetune.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmsec.errors import ConfigError
from dmsec.models.base import DiffusionModel
from dmsec.models.lora import LORA_TARGET_PRESETS, LoraSpec

LR_SCHEDULES = ("constant", "cosine")


def check_lora_targets(name: str) -> str:
    """`name` if it is a LoRA target preset; raises naming the choices."""
    if name not in LORA_TARGET_PRESETS:
        raise ConfigError(f"`lora_targets` must be one of {sorted(LORA_TARGET_PRESETS)}; got {name!r}")  # fmt: skip
    return name


def check_lr_schedule(name: str) -> str:
    """`name` if it is a learning-rate schedule; raises naming the choices."""
    if name not in LR_SCHEDULES:
        raise ConfigError(f"`lr_schedule` must be one of {list(LR_SCHEDULES)}; got {name!r}")
    return name


@dataclass(frozen=True)
class FinetuneDefaults:
    """One zoo's recipe as `dmsec finetune` defaults: LoRA targets, schedule and learning rates."""

    zoo: str  # the zoo whose recipe this is
    lora_targets: str  # a key of LORA_TARGET_PRESETS
    lr_schedule: str  # constant | cosine
    lora_lr: float
    full_lr: float

    def __post_init__(self) -> None:
        check_lora_targets(self.lora_targets)
        check_lr_schedule(self.lr_schedule)

    def lr(self, lora: bool) -> float:
        """The recipe's learning rate for a LoRA or a full fine-tune."""
        return self.lora_lr if lora else self.full_lr


ART_ZOO_DEFAULTS = FinetuneDefaults("art", "attn", "cosine", lora_lr=3e-3, full_lr=1e-4)
DIGIT_ZOO_DEFAULTS = FinetuneDefaults("digits", "all", "constant", lora_lr=1e-3, full_lr=1e-4)


def defaults_for(model: DiffusionModel) -> FinetuneDefaults:
    """The art zoo's recipe for text-conditional bases, the digit zoo's for the others."""
    text_conditional = getattr(model, "text_encoder", None) is not None
    return ART_ZOO_DEFAULTS if text_conditional else DIGIT_ZOO_DEFAULTS


def lora_spec(rank: int, targets: str) -> LoraSpec:
    """A rank-`rank` adapter (alpha = rank, as the zoos train) on the preset `targets`."""
    return LoraSpec(
        rank=rank,
        alpha=float(rank),
        target_modules=LORA_TARGET_PRESETS[check_lora_targets(targets)],
    )
