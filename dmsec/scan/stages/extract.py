"""The extract stage: an extractor on each pulled checkpoint, generations written as PNG files.

Per checkpoint: build the pair on a warm base (`WarmModels`), fit the scan's `ExtractConfig` to
its model (a null clustering space or guidance preset becomes what fits the images the model
makes: `ExtractConfig.fitted`; what ran, the condition read from the card included, is
recorded on the item as `extract_settings`), run the extractor the config names
(`dmsec.extract.EXTRACTORS`: FineXtract, or the direct-sampling baseline) with it, write every generation to `<staging>/sample_NNNNN.png`, and record the groups
(`Group`: rank, size, score, representative, seed, members, straight from the `ExtractionResult`)
so the match stage can search whole groups. Items are worked through grouped by base model.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar

from dmsec.extract import EXTRACTORS, ExtractConfig
from dmsec.images import save_png
from dmsec.models.pair import ModelPair, instance_condition
from dmsec.scan.hits import Group
from dmsec.scan.records import ScanItem
from dmsec.scan.stages.base import Stage, set_torch_threads
from dmsec.scan.stages.warm import WarmModels


def sample_name(index: int) -> str:
    """File name of generation `index` in a checkpoint's staging folder."""
    return f"sample_{index:05d}.png"


def staging_name(item: ScanItem) -> str:
    """A file-system-safe, unique folder name for one checkpoint of one scan."""
    digest = hashlib.sha256("|".join(item.key).encode()).hexdigest()[:12]
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", item.name)[:40].strip("._") or "checkpoint"
    return f"{label}-{digest}"


def extract_settings(config: ExtractConfig, pair: ModelPair, chosen: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """What an extraction on `pair` ran with (`config` as run), for the checkpoint's record."""
    condition = config.condition if config.condition is not None else instance_condition(pair)
    source = "config" if config.condition is not None else "card" if condition is not None else None
    return {"similarity": config.similarity, "w": config.w, "k": config.k,
            "condition": condition, "condition_from": source, "chosen_from_model": chosen}  # fmt: skip


class ExtractStage(Stage):
    """An extractor per checkpoint on warm base models; see the module docstring."""

    name: ClassVar[str] = "extract"

    def __init__(
        self,
        config: ExtractConfig,
        staging_root: str | Path,
        extractor: str = "finextract",
        device: str = "auto",
        max_warm_bases: int = 2,
        torch_threads: int | None = None,
    ) -> None:
        set_torch_threads(torch_threads)
        self.config = config
        self.method = EXTRACTORS.get(extractor)
        self.staging_root = Path(staging_root)
        self.models = WarmModels(device, max_warm_bases)

    def order(self, items: list[ScanItem]) -> list[ScanItem]:
        """Group by base model so each warm base serves all its fine-tunes in a row."""
        return sorted(items, key=lambda it: (it.base_key or "", it.order))

    def process(self, item: ScanItem) -> None:
        pair = self.models.pair(item)
        config, chosen = self.config.fitted(pair.pretrained)
        extractor = self.method(config)
        result = extractor.extract(pair)
        folder = self.staging_root / staging_name(item)
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(result.samples):
            save_png(image, folder / sample_name(i))
        item.groups = [
            Group(
                rank=rank,
                size=int(result.group_sizes[rank]),
                score=float(result.scores[rank]),
                representative=int(result.sample_indices[rank]),
                seed=int(result.seeds[rank]),
                members=[int(i) for i in result.members[rank]],
            )  # fmt: skip
            for rank in range(len(result.images))
        ]
        item.extract_method = extractor.name
        item.extract_seed = config.seed
        item.extract_settings = extract_settings(extractor.config_for(pair), pair, chosen)
        item.staging_dir = str(folder)
        item.n_samples = len(result.samples)
        item.n_groups = int(result.n_groups)
        item.clustering_threshold = float(result.threshold)
        item.device = self.models.device
