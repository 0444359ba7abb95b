"""Build (or reuse) the tiny model zoo on disk, and open it.

Layout of a built zoo (`<cache>/zoo/<name>-<config hash>/`):
    manifest.json                    what is here (written last: its presence means complete)
    base/                            diffusers folder: model_index.json, unet/, scheduler/
    full-7a-heavy/                   full fine-tune: diffusers folder + dmsec_model.json
    lora-9a-light/                   pytorch_lora_weights.safetensors + dmsec_model.json
    images/<set>/train_00.png ...    each set's training images and hold-outs (16x16 grey)
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dmsec.errors import ConfigError
from dmsec.finetune.vanilla import TrainConfig, train
from dmsec.images import load_pngs, save_png
from dmsec.models.base import DiffusionModel
from dmsec.models.loading import load_model
from dmsec.models.lora import LoraSpec, save_lora
from dmsec.models.unet2d import MODEL_CARD, ModelInfo, UNet2DHandle
from dmsec.progress import on_terminal
from dmsec.progress import progress as progress_bar
from dmsec.zoo.config import (
    INSTANCE_CLASS,
    NULL_CLASS,
    NUM_CLASS_EMBEDS,
    PRESETS,
    FinetuneSet,
    ZooConfig,
)
from dmsec.zoo.data import load_digit_images

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ZooEntry:
    """One checkpoint of the zoo, as listed in the manifest (paths relative to the zoo root)."""

    name: str
    kind: str  # base | full | lora
    path: str
    base: str | None = None
    set: str | None = None
    method: str | None = None
    strength: str | None = None
    protected: bool = False
    digit: int | None = None
    train_images: tuple[str, ...] = ()
    holdout_images: tuple[str, ...] = ()
    train_steps: int = 0
    train_seconds: float = 0.0
    # the art zoo's fields (None in the digit zoo)
    split: str | None = None  # tuning | reporting
    artist: str | None = None
    set_kind: str | None = None  # subject | style
    instance_prompt: str | None = None
    layout: str | None = None  # diffusers | peft | kohya


class Zoo:
    """A built zoo: its entries and how to load their models and images."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.exists():
            raise ConfigError(
                f"{self.root} is not a built zoo (no {MANIFEST}); run `dmsec zoo build`"
            )
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        self.entries = [
            ZooEntry(
                **{
                    **e,
                    "train_images": tuple(e["train_images"]),
                    "holdout_images": tuple(e["holdout_images"]),
                }
            )
            for e in self.manifest["entries"]
        ]

    def entry(self, name: str) -> ZooEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise ConfigError(f"no zoo entry {name!r}; have {[e.name for e in self.entries]}")

    @property
    def fine_tunes(self) -> list[ZooEntry]:
        return [e for e in self.entries if e.kind != "base"]

    @property
    def grey(self) -> bool:
        """True for the digit zoo (grey images), False for the art zoo (RGB)."""
        return self.manifest.get("image_mode", "L") == "L"

    def select(
        self,
        *,
        method: str | None = None,
        strength: str | None = None,
        protected: bool | None = None,
        split: str | None = None,
        layout: str | None = None,
    ) -> list[ZooEntry]:
        return [
            e
            for e in self.fine_tunes
            if (method is None or e.method == method)
            and (strength is None or e.strength == strength)
            and (protected is None or e.protected == protected)
            and (split is None or e.split == split)
            and (layout is None or e.layout == layout)
        ]

    def path(self, name: str) -> Path:
        return self.root / self.entry(name).path

    def load(self, name: str, device: str | torch.device = "cpu") -> DiffusionModel:
        """Load an entry's model through the public loader (LoRA: base + adapter)."""
        e = self.entry(name)
        base = self.path(e.base) if e.base else None
        return load_model(self.path(name), base=base, device=device)

    def train_images(self, name: str) -> torch.Tensor:
        return load_pngs([self.root / p for p in self.entry(name).train_images], grey=self.grey)

    def holdout_images(self, name: str) -> torch.Tensor:
        return load_pngs([self.root / p for p in self.entry(name).holdout_images], grey=self.grey)


def default_cache_dir() -> Path:
    """`$DMSEC_CACHE`, else `~/.cache/dmsec`."""
    return Path(os.environ.get("DMSEC_CACHE", Path.home() / ".cache" / "dmsec"))


def zoo_dir(config: ZooConfig, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "zoo" / f"{config.name}-{config.config_hash()}"


def build_zoo(
    config: ZooConfig | str = "full",
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> Zoo:
    """Return the zoo for `config`, training it first unless a complete build is cached.

    `device` only changes where training runs (a GPU build is numerically close to, not
    bit-identical with, a CPU build; the manifest records which).
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ConfigError(f"unknown zoo preset {config!r}; choose from {sorted(PRESETS)}")
        config = PRESETS[config]
    root = zoo_dir(config, cache_dir)
    if (root / MANIFEST).exists() and not force:
        return Zoo(root)
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    images, labels = load_digit_images()
    jobs = [(s, strength) for s in config.sets for strength in config.strengths(s)]
    # a bar per model on a terminal; in a log, one line per trained model
    bar = progress_bar(
        total=1 + len(jobs), desc=f"zoo {config.name}", unit="model", enabled=progress
    )
    inner = progress and on_terminal()
    bar.set_postfix_str("base")
    entries = [_train_base(config, images, labels, tmp, inner, device)]
    bar.update(1)
    base_handle = load_model(tmp / "base", device=device)
    for fset, strength in jobs:
        bar.set_postfix_str(f"{fset.name}-{strength}")
        entries.append(
            _train_finetune(config, fset, strength, base_handle, images, labels, tmp, inner)
        )
        bar.update(1)
    bar.close()
    manifest = {
        "config": asdict(config),
        "config_hash": config.config_hash(),
        "build_seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
        "device": device,
        "null_class": NULL_CLASS,
        "instance_class": INSTANCE_CLASS,
        "entries": [asdict(e) for e in entries],
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return Zoo(root)


def _train_base(
    config: ZooConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    root: Path,
    progress: bool,
    device: str,
) -> ZooEntry:
    mask = torch.isin(labels, torch.tensor(config.base_digits))
    info = ModelInfo(kind="base", null_class=NULL_CLASS, instance_class=INSTANCE_CLASS)
    handle = UNet2DHandle.random(
        seed=config.seed, info=info, channels=config.channels, num_class_embeds=NUM_CLASS_EMBEDS
    )
    handle.to(device)
    recipe = TrainConfig(
        steps=config.base_steps,
        batch_size=config.base_batch,
        lr=config.base_lr,
        label_dropout=config.label_dropout,
        warmup_steps=min(100, config.base_steps // 10),
        cosine_decay=True,
        seed=config.seed,
    )
    t0 = time.perf_counter()
    train(
        handle, images[mask], labels[mask].tolist(), recipe, progress="base" if progress else False
    )
    handle.to("cpu")
    handle.save(root / "base")
    return ZooEntry(
        "base",
        "base",
        "base",
        train_steps=config.base_steps,
        train_seconds=round(time.perf_counter() - t0, 1),
    )


def _set_images(
    fset: FinetuneSet, images: torch.Tensor, labels: torch.Tensor, root: Path
) -> tuple[torch.Tensor, list[str], list[str]]:
    idx = (labels == fset.digit).nonzero().flatten()
    n = fset.n_images
    if len(idx) < fset.offset + 2 * n:
        raise ConfigError(
            f"set {fset.name!r}: class {fset.digit} has too few images for offset {fset.offset}"
        )
    train_idx, hold_idx = (
        idx[fset.offset : fset.offset + n],
        idx[fset.offset + n : fset.offset + 2 * n],
    )
    train_paths: list[str] = []
    hold_paths: list[str] = []
    for kind, ids, paths in (("train", train_idx, train_paths), ("holdout", hold_idx, hold_paths)):
        for i, j in enumerate(ids.tolist()):
            rel = f"images/{fset.name}/{kind}_{i:02d}.png"
            if not (root / rel).exists():
                save_png(images[j], root / rel)
            paths.append(rel)
    # train on the images as saved (8-bit PNG), so "the training images" is exactly what is on disk
    return load_pngs([root / p for p in train_paths]), train_paths, hold_paths


def _train_finetune(
    config: ZooConfig,
    fset: FinetuneSet,
    strength: str,
    base_handle: DiffusionModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    root: Path,
    progress: bool,
) -> ZooEntry:
    name = f"{fset.name}-{strength}"
    steps = config.finetune_steps(fset.method, strength)
    train_x, train_paths, hold_paths = _set_images(fset, images, labels, root)
    handle = copy.deepcopy(base_handle)
    lora = (
        LoraSpec(rank=config.lora_rank, alpha=float(config.lora_rank))
        if fset.method == "lora"
        else None
    )
    recipe = TrainConfig(
        steps=steps,
        batch_size=config.finetune_batch,
        lr=config.lora_lr if lora else config.full_lr,
        lora=lora,
        seed=config.seed + 1,
    )
    t0 = time.perf_counter()
    train(
        handle,
        train_x,
        [INSTANCE_CLASS] * len(train_x),
        recipe,
        progress=name if progress else False,
    )
    seconds = round(time.perf_counter() - t0, 1)
    folder = root / name
    info = ModelInfo(
        kind=fset.method, base_model="../base", null_class=NULL_CLASS, instance_class=INSTANCE_CLASS
    )
    handle.to("cpu")
    if lora is not None:
        save_lora(handle.network, folder, base_model="../base")
        (folder / MODEL_CARD).write_text(info.to_json())
    else:
        assert isinstance(handle, UNet2DHandle)
        handle.save(folder, info)
    return ZooEntry(
        name=name,
        kind=fset.method,
        path=name,
        base="base",
        set=fset.name,
        method=fset.method,
        strength=strength,
        protected=fset.protected,
        digit=fset.digit,
        train_images=tuple(train_paths),
        holdout_images=tuple(hold_paths),
        train_steps=steps,
        train_seconds=seconds,
    )
