"""Build (or reuse) the art zoo on disk: a miniature Stable Diffusion and its fine-tunes.

Layout of a built art zoo (`<cache>/zoo/<name>-<config hash>/`), the same manifest format as
the digit zoo's (`dmsec.zoo.build.Zoo` opens both):
    manifest.json                        written last: its presence means complete
    base/                                diffusers StableDiffusionPipeline folder (safetensors)
    images/<set>/train_00.png ...        each set's training images and hold-outs (32x32 RGB)
    class_images/<set>/class_000.png     prior-preservation class images sampled from the base
    <set>-db-heavy/                      DreamBooth: a full diffusers folder + dmsec_model.json
    <set>-lora-light/                    pytorch_lora_weights.safetensors (PEFT layout) + card
    <set>-lora-light-kohya/              the same adapter in the kohya layout (one .safetensors)

A build works in `<name>-<hash>.partial/` and records each finished model there, so an
interrupted build resumes where it stopped; the folder is renamed into place when complete.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmsec.errors import ConfigError
from dmsec.finetune.prior import class_images
from dmsec.finetune.vanilla import TrainConfig, train
from dmsec.images import load_pngs, save_png
from dmsec.models.lora import LORA_TARGET_PRESETS, LoraSpec, save_lora
from dmsec.models.stable_diffusion import StableDiffusionHandle, load_stable_diffusion_folder
from dmsec.models.unet2d import MODEL_CARD, ModelInfo
from dmsec.progress import on_terminal
from dmsec.progress import progress as progress_bar
from dmsec.zoo.art_base import all_prompts, train_base, train_vae
from dmsec.zoo.art_config import (
    ART_PRESETS,
    INSTANCE_TOKEN,
    ArtSet,
    ArtZooConfig,
    Recipe,
    shares_base,
)
from dmsec.zoo.art_data import ArtDataset, data_manifest, load_art_dataset
from dmsec.zoo.art_model import build_art_model, build_tokenizer, build_vae
from dmsec.zoo.build import MANIFEST, Zoo, ZooEntry, default_cache_dir

logger = logging.getLogger(__name__)

# kohya's default for SD 1.x LoRAs: every Linear of the transformer (cross-attention) blocks —
# the attention projections, the feed-forward and the blocks' in/out projections; the same
# preset `dmsec finetune --lora-targets attn` uses
LORA_TARGETS = LORA_TARGET_PRESETS["attn"]


def art_zoo_dir(config: ArtZooConfig, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "zoo" / f"{config.name}-{config.config_hash()}"


def resolve_art_config(config: ArtZooConfig | str) -> ArtZooConfig:
    if isinstance(config, str):
        if config not in ART_PRESETS:
            raise ConfigError(f"unknown art zoo preset {config!r}; choose from {sorted(ART_PRESETS)}")  # fmt: skip
        return ART_PRESETS[config]
    return config


def base_indices(data: ArtDataset, config: ArtZooConfig) -> list[int]:
    """Concepts base training sees: every one outside the held-out sub-categories."""
    held = set(config.heldout_subcategories)
    return [i for i, c in enumerate(data.concepts) if c.subcategory not in held]


def set_indices(data: ArtDataset, config: ArtZooConfig, s: ArtSet) -> tuple[list[int], list[int]]:
    """(training, hold-out) concept indices of a set; hold-outs follow the training images."""
    if s.kind == "subject":
        pool = data.indices((s.subcategory,)) if s.subcategory else []
    else:  # a seeded order of the base concepts, the same for every style set of an artist
        order = np.random.default_rng(config.seed).permutation(base_indices(data, config))
        pool = [int(i) for i in order]
    need = s.offset + s.n_train + s.n_holdout
    if len(pool) < need:
        raise ConfigError(f"set {s.name!r}: only {len(pool)} concepts available, needs {need}")
    chosen = pool[s.offset : need]
    return chosen[: s.n_train], chosen[s.n_train :]


def check_disjoint(data: ArtDataset, config: ArtZooConfig) -> None:
    """No image is in two sets, and subject sets' concepts are not in base training."""
    seen: dict[tuple[str, int], str] = {}
    for s in config.sets:
        train_idx, hold_idx = set_indices(data, config, s)
        for i in train_idx + hold_idx:
            key = (s.artist, i)
            if key in seen:
                raise ConfigError(f"sets {seen[key]!r} and {s.name!r} share image {key}")
            seen[key] = s.name


def build_art_zoo(
    config: ArtZooConfig | str = "art",
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> Zoo:
    """Return the art zoo for `config`, training it first unless a complete build is cached."""
    config = resolve_art_config(config)
    root = art_zoo_dir(config, cache_dir)
    if (root / MANIFEST).exists() and not force:
        return Zoo(root)
    data = load_art_dataset()
    check_disjoint(data, config)
    # One work folder per config: every finished model leaves a record in `done/`, so an
    # interrupted build (a killed job, a lost machine) resumes where it stopped.
    work = root.with_name(f"{root.name}.partial")
    if force:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = _Progress(work)
    if done.has("base"):
        base = load_stable_diffusion_folder(work / "base")
        base.to(device)
        base_entry, timings = done.entries("base")[0], done.extra("base")
        logger.info("zoo %s: resuming from %s (base already trained)", config.name, work)
    elif (shared := shared_base(config, cache_dir)) is not None:
        # another preset's trained base serves this one: copy it (a model folder) instead of
        # training the same base again
        shutil.copytree(shared.path, work / "base", dirs_exist_ok=True)
        base_entry, timings = shared.entry, {**shared.timings, "copied_from": shared.preset}
        done.record("base", [base_entry], timings)
        logger.info("zoo %s: base copied from the %s zoo's (%s)", config.name, shared.preset, shared.path)  # fmt: skip
        base = load_stable_diffusion_folder(work / "base")
        base.to(device)
    else:
        base, base_entry, timings = _train_base_model(config, data, work, progress, device)
        done.record("base", [base_entry], timings)
    entries = [base_entry]
    jobs = [(s, r, strength) for s in config.sets for r, strength in config.runs(s)]
    # a bar on a terminal; in a log, one line per fine-tune (the base's training prints a line
    # per tenth of its steps: it is the hour-long part)
    bar = progress_bar(total=len(jobs), desc=f"zoo {config.name} fine-tunes", unit="fine-tune", enabled=progress)  # fmt: skip
    inner = progress and on_terminal()
    for s, recipe, strength in jobs:
        name = f"{s.name}-{recipe}-{strength}"
        bar.set_postfix_str(name)
        if not done.has(name):
            done.record(name, _train_finetune(config, data, s, recipe, strength, base, work, inner))
        entries += done.entries(name)
        bar.update(1)
    bar.close()
    manifest = {
        "zoo": "art",
        "config": asdict(config),
        "config_hash": config.config_hash(),
        # this run's wall time (less than the total when it resumed); the models' own times:
        "build_seconds": round(time.perf_counter() - started, 1),
        "train_seconds": round(sum(e.train_seconds for e in entries if e.layout != "kohya"), 1),
        "base_seconds": timings,
        "torch": torch.__version__,
        "device": device,
        "image_mode": "RGB",
        "data": data_manifest(),
        "entries": [asdict(e) for e in entries],
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(work / _Progress.FOLDER)
    shutil.rmtree(root, ignore_errors=True)
    work.rename(root)
    return Zoo(root)


def cached_art_base(config: ArtZooConfig | str, cache_dir: str | Path | None = None) -> Path | None:  # fmt: skip
    """The folder of `config`'s base model if this machine has trained it: in the built zoo, or
    in its build folder (a build under way, or `build_art_base`); else None."""
    root = art_zoo_dir(resolve_art_config(config), cache_dir)
    if (root / MANIFEST).exists():
        return root / "base"
    work = root.with_name(f"{root.name}.partial")
    return work / "base" if (work / _Progress.FOLDER / "base.json").exists() else None


@dataclass(frozen=True)
class SharedBase:
    """A trained base of another preset that serves this one (`shares_base`)."""

    preset: str
    path: Path
    entry: ZooEntry
    timings: dict[str, Any]


def shared_base(config: ArtZooConfig, cache_dir: str | Path | None = None) -> SharedBase | None:
    """A trained base of another preset on this machine that serves `config`, or None."""
    for other in ART_PRESETS.values():
        if other.name == config.name or not shares_base(config, other):
            continue
        path = cached_art_base(other, cache_dir)
        if path is None:
            continue
        if path.parent.name.endswith(".partial"):  # a build under way: its own record of the base
            done = _Progress(path.parent)
            return SharedBase(other.name, path, done.entries("base")[0], done.extra("base"))
        zoo = Zoo(path.parent)
        return SharedBase(other.name, path, zoo.entry("base"), dict(zoo.manifest.get("base_seconds", {})))  # fmt: skip
    return None


def build_art_base(
    config: ArtZooConfig | str = "art-small",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> Path:
    """The folder of `config`'s base model alone (VAE, text encoder and tokenizer, UNet: a
    diffusers folder), trained first unless cached (`cached_art_base`), for whoever fine-tunes
    sets of their own. It is trained in the zoo's build folder, so a later `build_art_zoo` of
    the same config resumes from it instead of training it again."""
    config = resolve_art_config(config)
    cached = cached_art_base(config, cache_dir)
    if cached is not None:
        return cached
    root = art_zoo_dir(config, cache_dir)
    work = root.with_name(f"{root.name}.partial")
    work.mkdir(parents=True, exist_ok=True)
    _, entry, timings = _train_base_model(config, load_art_dataset(), work, progress, device)
    _Progress(work).record("base", [entry], timings)
    return work / "base"


class _Progress:
    """What an unfinished build has already trained: one JSON record per finished model."""

    FOLDER = "done"

    def __init__(self, work: Path) -> None:
        self.folder = work / self.FOLDER
        self.folder.mkdir(exist_ok=True)

    def has(self, name: str) -> bool:
        return (self.folder / f"{name}.json").exists()

    def record(
        self, name: str, entries: list[ZooEntry], extra: dict[str, Any] | None = None
    ) -> None:
        path = self.folder / f"{name}.json"
        text = json.dumps({"entries": [asdict(e) for e in entries], "extra": extra or {}})
        path.with_suffix(".tmp").write_text(text)
        path.with_suffix(".tmp").rename(path)  # atomic: a record means the model is on disk

    def _read(self, name: str) -> dict[str, Any]:
        return json.loads((self.folder / f"{name}.json").read_text())

    def entries(self, name: str) -> list[ZooEntry]:
        return [_entry(e) for e in self._read(name)["entries"]]

    def extra(self, name: str) -> dict[str, Any]:
        return self._read(name)["extra"]


def _entry(fields: dict[str, Any]) -> ZooEntry:
    for key in ("train_images", "holdout_images"):
        fields[key] = tuple(fields.get(key, ()))
    return ZooEntry(**fields)


def _train_base_model(
    config: ArtZooConfig, data: ArtDataset, root: Path, progress: bool, device: str
) -> tuple[StableDiffusionHandle, ZooEntry, dict[str, float]]:
    idx = base_indices(data, config)
    size = config.model.image_size
    images = torch.cat([data.tensor(a, idx, size) for a in config.base_artists])
    names = [data.concepts[i].words for i in idx] * len(config.base_artists)
    artists = [a for a in config.base_artists for _ in idx]
    # 1. tokenizer over every prompt a template, a set or a method can form
    words = [c.words for c in data.concepts]
    prompts = all_prompts(words, list(config.base_artists) + [s.artist for s in config.sets])
    prompts += [s.instance_prompt() for s in config.sets] + [INSTANCE_TOKEN]
    tokenizer = build_tokenizer(prompts, config.model.max_prompt_tokens)
    # 2. the VAE, alone
    t0 = time.perf_counter()
    vae = build_vae(config.model, config.seed + 2).to(device)
    train_vae(vae, images.to(device), steps=config.vae_steps, batch_size=config.vae_batch,
              lr=config.vae_lr, seed=config.seed, progress="vae" if progress else False)  # fmt: skip
    vae_seconds = time.perf_counter() - t0
    # 3. UNet and text encoder on the latents
    handle = build_art_model(config.model, tokenizer, vae, config.seed, ModelInfo(kind="base"))
    handle.to(device)
    with torch.no_grad():
        latents = torch.cat(
            [handle.encode_images(images[i : i + 256]) for i in range(0, len(images), 256)]
        )
    t1 = time.perf_counter()
    train_base(handle, latents, names, artists, steps=config.base_steps,
               batch_size=config.base_batch, lr=config.base_lr, seed=config.seed,
               progress="base" if progress else False)  # fmt: skip
    unet_seconds = time.perf_counter() - t1
    handle.to("cpu")
    handle.save(root / "base")
    entry = ZooEntry("base", "base", "base", train_steps=config.base_steps,
                     train_seconds=round(vae_seconds + unet_seconds, 1))  # fmt: skip
    timings = {"vae": round(vae_seconds, 1), "unet_text": round(unet_seconds, 1)}
    handle.to(device)
    return handle, entry, timings


def _set_images(
    data: ArtDataset, config: ArtZooConfig, s: ArtSet, root: Path
) -> tuple[torch.Tensor, list[str], list[str]]:
    train_idx, hold_idx = set_indices(data, config, s)
    paths: dict[str, list[str]] = {"train": [], "holdout": []}
    for kind, ids in (("train", train_idx), ("holdout", hold_idx)):
        images = data.tensor(s.artist, ids, config.model.image_size)
        for i, image in enumerate(images):
            rel = f"images/{s.name}/{kind}_{i:02d}.png"
            if not (root / rel).exists():
                save_png(image, root / rel)
            paths[kind].append(rel)
    # train on the images as saved (8-bit PNG), so "the training images" is what is on disk
    train_x = load_pngs([root / p for p in paths["train"]], grey=False)
    return train_x, paths["train"], paths["holdout"]


def _class_images(
    config: ArtZooConfig, s: ArtSet, base: StableDiffusionHandle, root: Path
) -> torch.Tensor:
    folder = root / "class_images" / s.name
    paths = [folder / f"class_{i:03d}.png" for i in range(config.n_class_images)]
    if not all(p.exists() for p in paths):
        images = class_images(base, s.class_prompt(), config.n_class_images, seed=config.seed)
        for image, path in zip(images, paths, strict=True):
            save_png(image, path)
    return load_pngs(paths, grey=False)


def _train_finetune(
    config: ArtZooConfig,
    data: ArtDataset,
    s: ArtSet,
    recipe_name: str,
    strength: str,
    base: StableDiffusionHandle,
    root: Path,
    progress: bool,
) -> list[ZooEntry]:
    recipe = config.recipe(recipe_name)
    name = f"{s.name}-{recipe_name}-{strength}"
    train_x, train_paths, hold_paths = _set_images(data, config, s, root)
    prior_x = _class_images(config, s, base, root) if recipe.prior_weight > 0 else None
    handle, steps, seconds = finetune_art(
        base, train_x, s, recipe, strength, config.seed, prior_x, name if progress else False
    )
    lora = recipe.lora_rank > 0
    prompt = s.instance_prompt()
    handle.to("cpu")
    info = ModelInfo(kind="lora" if lora else "full", base_model="../base", instance_prompt=prompt,
                     extra={"recipe": asdict(recipe), "set": asdict(s), "strength": strength})  # fmt: skip
    folder = root / name
    if lora:
        save_lora(handle.network, folder, base_model="../base")
        (folder / MODEL_CARD).write_text(info.to_json())
    else:
        handle.info = info
        handle.save(folder)
    common: dict[str, Any] = dict(
        base="base", set=s.name, method=recipe_name, strength=strength, protected=s.protected,
        train_images=tuple(train_paths), holdout_images=tuple(hold_paths), train_steps=steps,
        train_seconds=seconds, split=s.split, artist=s.artist, set_kind=s.kind,
        instance_prompt=prompt,
    )  # fmt: skip
    entries = [ZooEntry(name=name, kind="lora" if lora else "full", path=name,
                        layout="peft" if lora else "diffusers", **common)]  # fmt: skip
    if lora:
        entries.append(_kohya_copy(handle, folder, root, info, common))
    return entries


def finetune_art(
    base: StableDiffusionHandle,
    train_x: torch.Tensor,
    s: ArtSet,
    recipe: Recipe,
    strength: str,
    seed: int,
    prior_x: torch.Tensor | None = None,
    progress: str | bool = False,
) -> tuple[StableDiffusionHandle, int, float]:
    """One of the zoo's fine-tunes of a copy of `base` on `train_x` (the recipe, steps and seed
    the zoo uses; `prior_x`: class images when the recipe preserves the prior).

    Returns (fine-tuned handle, steps, seconds). Benchmarks call it to fine-tune the same recipe
    on other images (protected copies, other seeds).
    """
    if recipe.prior_weight > 0 and prior_x is None:
        raise ConfigError(f"recipe {recipe.name!r} preserves the prior: give its class images")
    handle = copy.deepcopy(base)
    lora = (
        LoraSpec(rank=recipe.lora_rank, alpha=float(recipe.lora_rank), target_modules=LORA_TARGETS)
        if recipe.lora_rank
        else None
    )
    steps = recipe.steps(strength, len(train_x))
    train_config = TrainConfig(
        steps=steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        lora=lora,
        seed=seed + 1,
        train_text_encoder=recipe.train_text_encoder,
        prior_weight=recipe.prior_weight or 1.0,
        cosine_decay=True,
    )
    prior = prior_x if recipe.prior_weight > 0 else None
    t0 = time.perf_counter()
    train(
        handle, train_x, [s.instance_prompt()] * len(train_x), train_config, progress=progress,
        prior_images=prior,
        prior_conditions=None if prior is None else [s.class_prompt()] * len(prior),
    )  # fmt: skip
    return handle, steps, round(time.perf_counter() - t0, 1)


def _kohya_copy(
    handle: StableDiffusionHandle,
    peft_folder: Path,
    root: Path,
    info: ModelInfo,
    common: dict[str, Any],
) -> ZooEntry:
    """The same adapter as kohya's trainers write it (`lora_unet_*` keys with `.alpha`)."""
    from peft import get_peft_model_state_dict

    from dmsec.zoo.formats import write_kohya_lora

    name = f"{peft_folder.name}-kohya"
    folder = root / name
    state = get_peft_model_state_dict(handle.network, adapter_name="default")
    write_kohya_lora(state, None, folder / f"{name}.safetensors",
                     metadata={"ss_base_model_version": "dmsec-art", "ss_output_name": name})  # fmt: skip
    (folder / MODEL_CARD).write_text(info.to_json())
    return ZooEntry(name=name, kind="lora", path=name, layout="kohya", **common)
