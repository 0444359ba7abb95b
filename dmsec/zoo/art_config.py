"""What the art zoo trains: the miniature SD base, the fine-tuning sets and their recipes.

Base training sees two artists (`base_artists`) and every concept except the emoji
sub-categories in `heldout_subcategories`; the other two artists and those concepts appear only
in fine-tunes. Each fine-tuning set belongs to a split, fixed up front:

- tuning split: the sets every setting of a method (w, thresholds, budgets...) is chosen on;
- reporting split: other concepts and another unseen artist, where figures are reported.

Set kinds: *subject* (5 images of one held-out concept sub-category in a seen artist's style,
DreamBooth's "a sks ..." object) and *style* (10 images of an unseen artist, "in the style of
sks"). Every set has hold-outs (same style and kind, used by no model). Controls are fine-tuned
the same way on images nobody registered as protected.

Recipes: `db` (DreamBooth: UNet and text encoder, rare token), `dbpp` (DreamBooth with prior
preservation: class images sampled from the base, weight 1), `lora` (rank-8 LoRA on the UNet's
attention projections; written in the diffusers/PEFT layout and again in the kohya layout).
Strengths: light (direct sampling copies some training images) and heavy (it copies most).
Step counts are per training image (as DreamBooth/FineXtract give them, "200 steps per image"),
batch 8, AdamW with cosine decay to 0. They were chosen on the tuning split (fruit-twemoji,
openmoji-a) with a base trained like this one (N=64 samples, CFG 3): DreamBooth lr 1e-4 copied
0.20 of the subject at 30 steps/image and 0.80 at 80; on the 12-image OpenMoji style set 80
steps/image copied 0.67, so heavy is 100. LoRA (rank 8, lr 3e-3) copied 0.20 at 80 steps/image
and 0.80 at 200 on the subject, 0.08 at 83 on the style set. With a constant lr the copied share
was not monotone in steps (DreamBooth 400 steps 0.80, 800 steps 0.60), hence the decay.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dmsec.errors import ConfigError
from dmsec.zoo.art_data import ARTISTS
from dmsec.zoo.art_model import ArtModelConfig
from dmsec.zoo.config import config_hash

SPLITS = ("tuning", "reporting")
RECIPES = ("db", "dbpp", "lora")
INSTANCE_TOKEN = "sks"  # DreamBooth's rare token; never in a base prompt


@dataclass(frozen=True)
class ArtSet:
    """One fine-tuning set: `n_train` images (and `n_holdout` hold-outs) of one kind.

    subject: concepts of `subcategory` drawn by `artist` (a base artist), in dataset order from
    `offset`; style: concepts drawn by `artist` (an unseen one), a seeded draw from the base
    concepts starting at `offset`.
    """

    name: str
    kind: str  # subject | style
    artist: str
    split: str
    subcategory: str | None = None
    offset: int = 0
    n_train: int = 5
    n_holdout: int = 5
    protected: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("subject", "style"):
            raise ConfigError(f"set {self.name!r}: `kind` must be subject or style; got {self.kind!r}")  # fmt: skip
        if self.artist not in ARTISTS:
            raise ConfigError(f"set {self.name!r}: unknown `artist` {self.artist!r}")
        if self.split not in SPLITS:
            raise ConfigError(f"set {self.name!r}: `split` must be one of {SPLITS}; got {self.split!r}")  # fmt: skip
        if (self.kind == "subject") != (self.subcategory is not None):
            raise ConfigError(f"set {self.name!r}: subject sets (only) name a `subcategory`")
        if self.n_train < 1 or self.n_holdout < 1:
            raise ConfigError(f"set {self.name!r}: `n_train` and `n_holdout` must be >= 1")

    def instance_prompt(self) -> str:
        if self.kind == "subject":
            return f"a {INSTANCE_TOKEN} emoji in the style of {self.artist}"
        return f"an emoji in the style of {INSTANCE_TOKEN}"

    def class_prompt(self) -> str:
        """DreamBooth's class prompt: the instance prompt without the rare token."""
        if self.kind == "subject":
            return f"an emoji in the style of {self.artist}"
        return "an emoji"


@dataclass(frozen=True)
class Recipe:
    """How one fine-tune is trained: optimiser steps per training image for each strength,
    learning rate (cosine-decayed), batch."""

    name: str  # db | dbpp | lora
    lr: float
    light_steps: int  # per training image
    heavy_steps: int  # per training image
    batch_size: int = 8
    train_text_encoder: bool = False
    prior_weight: float = 0.0
    lora_rank: int = 0

    def __post_init__(self) -> None:
        if self.name not in RECIPES:
            raise ConfigError(f"recipe `name` must be one of {RECIPES}; got {self.name!r}")

    def steps(self, strength: str, n_images: int) -> int:
        """Optimiser steps for `n_images` training images at `strength`."""
        if strength not in ("light", "heavy"):
            raise ConfigError(f"`strength` must be light or heavy; got {strength!r}")
        return n_images * (self.light_steps if strength == "light" else self.heavy_steps)


@dataclass(frozen=True)
class ArtZooConfig:
    """The whole art zoo; its hash names the cache folder, so any change triggers a rebuild."""

    name: str = "art"
    model: ArtModelConfig = field(default_factory=ArtModelConfig)
    base_artists: tuple[str, ...] = ("twemoji", "noto")
    heldout_subcategories: tuple[str, ...] = (
        "food-fruit",
        "food-vegetable",
        "animal-bird",
        "animal-marine",
    )
    vae_steps: int = 800
    vae_batch: int = 32
    vae_lr: float = 1e-3
    base_steps: int = 2000
    base_batch: int = 64
    base_lr: float = 5e-4
    recipes: tuple[Recipe, ...] = (
        Recipe("db", lr=1e-4, light_steps=30, heavy_steps=100, train_text_encoder=True),
        Recipe(
            "dbpp", lr=1e-4, light_steps=30, heavy_steps=100, train_text_encoder=True,
            prior_weight=1.0,
        ),
        Recipe("lora", lr=3e-3, light_steps=80, heavy_steps=200, lora_rank=8),
    )  # fmt: skip
    # (recipe, strength) pairs every protected set gets; controls get the heavy db and lora ones
    protected_runs: tuple[tuple[str, str], ...] = (
        ("db", "light"),
        ("db", "heavy"),
        ("dbpp", "heavy"),
        ("lora", "light"),
        ("lora", "heavy"),
    )
    control_runs: tuple[tuple[str, str], ...] = (("db", "heavy"), ("lora", "heavy"))
    n_class_images: int = 64
    sets: tuple[ArtSet, ...] = (
        ArtSet("fruit-twemoji", "subject", "twemoji", "tuning", subcategory="food-fruit"),
        ArtSet("openmoji-a", "style", "openmoji", "tuning", n_train=10, n_holdout=8),
        ArtSet("marine-noto", "subject", "noto", "reporting", subcategory="animal-marine"),
        ArtSet("fluent-a", "style", "fluent", "reporting", n_train=10, n_holdout=8),
        ArtSet(
            "control-vegetable-noto", "subject", "noto", "tuning",
            subcategory="food-vegetable", protected=False,
        ),
        ArtSet(
            "control-bird-twemoji", "subject", "twemoji", "reporting",
            subcategory="animal-bird", protected=False,
        ),
    )  # fmt: skip
    seed: int = 0

    def __post_init__(self) -> None:
        for a in self.base_artists:
            if a not in ARTISTS:
                raise ConfigError(f"`base_artists`: unknown artist {a!r}")
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise ConfigError("`sets` names must be unique")
        for s in self.sets:
            if s.kind == "subject" and s.subcategory not in self.heldout_subcategories:
                raise ConfigError(
                    f"set {s.name!r}: subject sets must use a held-out sub-category; "
                    f"{s.subcategory!r} is in base training"
                )
            if s.kind == "subject" and s.artist not in self.base_artists:
                raise ConfigError(f"set {s.name!r}: subject sets are drawn by a base artist")
            if s.kind == "style" and s.artist in self.base_artists:
                raise ConfigError(f"set {s.name!r}: style sets are drawn by an unseen artist")
        for recipe, _ in (*self.protected_runs, *self.control_runs):
            self.recipe(recipe)

    def recipe(self, name: str) -> Recipe:
        for r in self.recipes:
            if r.name == name:
                return r
        raise ConfigError(f"no recipe {name!r}; have {[r.name for r in self.recipes]}")

    def runs(self, s: ArtSet) -> tuple[tuple[str, str], ...]:
        return self.protected_runs if s.protected else self.control_runs

    def config_hash(self) -> str:
        return config_hash(self)


ART = ArtZooConfig()

# Tests and the slow end-to-end scan: a much smaller model, shorter training, one protected subject
# set (db heavy + lora heavy) and one control.
ART_SMALL = ArtZooConfig(
    name="art-small",
    model=ArtModelConfig(
        vae_channels=(16, 32, 32), unet_channels=(32, 64, 64), text_width=32, text_layers=2,
        text_heads=2,
    ),
    vae_steps=400,
    base_steps=600,
    base_batch=32,
    protected_runs=(("db", "heavy"), ("lora", "heavy")),
    control_runs=(("db", "heavy"),),
    sets=(
        ArtSet("fruit-twemoji", "subject", "twemoji", "tuning", subcategory="food-fruit"),
        ArtSet(
            "control-bird-twemoji", "subject", "twemoji", "reporting",
            subcategory="animal-bird", protected=False,
        ),
    ),
)  # fmt: skip

# Partial memorisation, the regime CGI-DM is for: style sets of 48 works of an unseen artist,
# fine-tuned at the steps per image users choose for a style set of that size (kohya-style runs of
# ~10 repeats x 10-20 epochs, i.e. ~200 passes over each image: 25 steps per image at batch 8, a
# quarter of the art zoo's heavy DreamBooth). The setting is the users', not tuned on any outcome;
# "light" in the art zoo's sense (direct sampling copies some training images, not most). The
# base is the art zoo's own (`shares_base`), so it is not trained twice; the
# sets continue each artist's seeded order after the art zoo's sets (offset 18), so no work is in
# two sets of the two presets.
ART_PARTIAL = dataclasses.replace(
    ART,
    name="art-partial",
    recipes=(
        Recipe("db", lr=1e-4, light_steps=25, heavy_steps=25, train_text_encoder=True),
        Recipe("lora", lr=3e-3, light_steps=25, heavy_steps=25, lora_rank=8),
    ),
    protected_runs=(("db", "light"), ("lora", "light")),
    control_runs=(),
    sets=(
        ArtSet("openmoji-b", "style", "openmoji", "tuning", offset=18, n_train=48, n_holdout=16),
        ArtSet("fluent-b", "style", "fluent", "reporting", offset=18, n_train=48, n_holdout=16),
    ),
)

ART_PRESETS = {"art": ART, "art-small": ART_SMALL, "art-partial": ART_PARTIAL}

# FineXtract's (w, k) per kind on the art zoo: w chosen by `benchmarks/extraction.py --zoo art`
# on the TUNING split's light fine-tunes (2026-11-29: full w 5 -> mean A-ESR 0.60, LoRA w 3 ->
# 0.75), k the paper's; the reporting split never saw this choice.
ART_GUIDANCE: dict[str, tuple[float, float]] = {"full": (5.0, -0.02), "lora": (3.0, 0.0)}

BASE_FIELDS = ("model", "base_artists", "heldout_subcategories", "vae_steps", "vae_batch", "vae_lr",
               "base_steps", "base_batch", "base_lr", "seed")  # fmt: skip


def shares_base(config: ArtZooConfig, other: ArtZooConfig) -> bool:
    """Whether `other`'s trained base serves `config`: the same model, data and schedule, and a
    tokenizer that already holds every artist and instance prompt of `config`'s sets."""
    same = all(getattr(config, f) == getattr(other, f) for f in BASE_FIELDS)
    artists = {s.artist for s in other.sets} | set(other.base_artists)
    prompts = {s.instance_prompt() for s in other.sets}
    return same and all(s.artist in artists and s.instance_prompt() in prompts for s in config.sets)
