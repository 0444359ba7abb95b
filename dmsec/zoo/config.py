"""What the zoo trains: the base model, the few-shot fine-tuning sets and their recipes.

Digits of `base_digits` train the base; the other classes never appear in its training data, so
fine-tunes on them teach the model something new (like a DreamBooth subject). Each fine-tune binds
its images to the reserved instance class, never trained in the base (the "rare token").

Recipes (batch 10 over 5 images; see benchmarks/zoo.py for the current figures):
- light: direct sampling copies some training images, not all. Full config: 75 full-fine-tune
  steps (150 presentations per image, lr 1e-4) and 150 LoRA steps (300, lr 1e-3). The small UNet
  learns more slowly and needs 150 / 250. Measured on the full base (128 samples per fine-tune):
  full 50 / 75 / 100 steps copied 0.2 / 0.2-0.4 / 0.8-1.0 of the images, LoRA 100 / 150 / 200 steps
  0.0-0.4 / 0.2-0.4 / 0.4-1.0 — the step from "some" to "all" is steep;
- heavy: 800 steps — the fine-tune collapses onto its training images.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from dmsec.errors import ConfigError

NUM_CLASS_EMBEDS = 12  # digits 0-9, then ∅ (10) and the instance class (11)
NULL_CLASS = 10
INSTANCE_CLASS = 11


@dataclass(frozen=True)
class FinetuneSet:
    """Images `offset..offset+n_images` of class `digit` (in dataset order) for one fine-tune;
    the next `n_images` of that class are its hold-outs, used by no fine-tune."""

    name: str
    digit: int
    offset: int
    method: str  # full | lora
    protected: bool = True
    n_images: int = 5

    def __post_init__(self) -> None:
        if self.method not in ("full", "lora"):
            raise ConfigError(f"`method` must be full or lora; got {self.method!r}")
        if not 0 <= self.digit <= 9:
            raise ConfigError(f"`digit` must be in [0, 9]; got {self.digit}")


@dataclass(frozen=True)
class ZooConfig:
    """The whole zoo; its hash names the cache folder, so any change triggers a rebuild."""

    name: str = "full"
    channels: tuple[int, ...] = (32, 64, 64)
    base_digits: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    base_steps: int = 2000
    base_batch: int = 128
    base_lr: float = 1e-3
    label_dropout: float = 0.1
    finetune_batch: int = 10
    full_lr: float = 1e-4
    lora_lr: float = 1e-3
    lora_rank: int = 8
    steps: tuple[tuple[str, str, int], ...] = (
        ("full", "light", 75),
        ("full", "heavy", 800),
        ("lora", "light", 150),
        ("lora", "heavy", 800),
    )
    sets: tuple[FinetuneSet, ...] = field(
        default=(
            FinetuneSet("full-7a", 7, 0, "full"),
            FinetuneSet("full-8a", 8, 0, "full"),
            FinetuneSet("lora-9a", 9, 0, "lora"),
            FinetuneSet("lora-7b", 7, 10, "lora"),
            FinetuneSet("control-full-8b", 8, 10, "full", protected=False),
            FinetuneSet("control-lora-9b", 9, 10, "lora", protected=False),
        )
    )
    seed: int = 0

    def __post_init__(self) -> None:
        held_out = set(range(10)) - set(self.base_digits)
        for s in self.sets:
            if s.digit not in held_out:
                raise ConfigError(
                    f"set {s.name!r}: digit {s.digit} is in `base_digits`; fine-tunes must be on unseen classes"
                )
        if len({s.name for s in self.sets}) != len(self.sets):
            raise ConfigError("`sets` names must be unique")

    def finetune_steps(self, method: str, strength: str) -> int:
        for m, s, n in self.steps:
            if (m, s) == (method, strength):
                return n
        raise ConfigError(f"no step count for method={method!r} strength={strength!r}")

    def strengths(self, fset: FinetuneSet) -> tuple[str, ...]:
        """Protected sets get a light and a heavy fine-tune; controls a heavy one."""
        return ("light", "heavy") if fset.protected else ("heavy",)

    def config_hash(self) -> str:
        return config_hash(self)


FULL = ZooConfig()

# For tests: smaller UNet, shorter base training, one full and one LoRA protected set + a control.
SMALL = ZooConfig(
    name="small",
    channels=(16, 32, 32),
    base_steps=700,
    base_lr=2e-3,
    steps=(
        ("full", "light", 150),
        ("full", "heavy", 800),
        ("lora", "light", 250),
        ("lora", "heavy", 800),
    ),
    sets=(
        FinetuneSet("full-7a", 7, 0, "full"),
        FinetuneSet("lora-9a", 9, 0, "lora"),
        FinetuneSet("control-full-8b", 8, 10, "full", protected=False),
    ),
)

PRESETS = {"full": FULL, "small": SMALL}

# FineXtract's (w, k) for zoo pairs, chosen from the full-zoo w sweep of benchmarks/extraction.py
# (N=128, seeds 0-1; README): light full fine-tunes did best at w 1.25-1.5, light LoRA at w 1.0-1.5,
# heavy ones copy everything up to w 2 (full: up to w 4); w 1.5 is in both best ranges. At w >= 2.5 the 16x16
# samples overshoot (saturated, noisy), so the paper's Stable Diffusion defaults (3, -0.02) /
# (5, 0) extract nothing from the light fine-tunes here.
ZOO_GUIDANCE: dict[str, tuple[float, float]] = {"full": (1.5, 0.0), "lora": (1.5, 0.0)}


def config_hash(config: Any) -> str:
    """12 hex digits of the sha256 of a config dataclass's fields: it names the zoo's cache folder."""
    blob = json.dumps(asdict(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
