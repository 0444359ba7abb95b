"""The extract stage: FineXtract on each pulled checkpoint, generations written as PNG files.

Per checkpoint: build the pair on a warm base (`WarmModels`), run `dmsec.extract.extract` with
the scan's settings, write every generation to `<staging>/sample_NNNNN.png`, and record the
groups (rank, size, score, representative, seed, members). Items are worked through grouped by
base model. Group membership is recomputed with the same deterministic clustering FineXtract
ran (`cluster_samples` on `zoo_embedding`), so the match stage can search whole groups.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dmsec.extract import ExtractConfig, ExtractionResult, extract
from dmsec.extract.clustering import cluster_samples
from dmsec.images import save_png
from dmsec.metrics import zoo_embedding
from dmsec.scan.config import ExtractSettings
from dmsec.scan.models import WarmModels
from dmsec.scan.records import ScanItem
from dmsec.scan.stage import Stage, set_torch_threads


def sample_name(index: int) -> str:
    """File name of generation `index` in a checkpoint's staging folder."""
    return f"sample_{index:05d}.png"


def staging_name(item: ScanItem) -> str:
    """A file-system-safe, unique folder name for one checkpoint of one scan."""
    digest = hashlib.sha256("|".join(item.key).encode()).hexdigest()[:12]
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", item.name)[:40].strip("._") or "checkpoint"
    return f"{label}-{digest}"


def extract_config(settings: ExtractSettings) -> ExtractConfig:
    """The `ExtractConfig` a scan uses (every group kept; the match stage picks candidates)."""
    return ExtractConfig(
        w=settings.w,
        k=settings.k,
        steps=settings.steps,
        n_samples=settings.n_samples,
        batch_size=settings.batch_size,
        seed=settings.seed,
        n_groups=settings.n_groups,
        top_k=None,
        defaults=settings.guidance_table(),
    )


def group_members(result: ExtractionResult) -> list[list[int]]:
    """Sample indices of each ranked group of `result`.

    Re-runs FineXtract's clustering (deterministic); if its representatives ever differ from the
    result's, falls back to giving each generation to its most similar representative.
    """
    embeddings = zoo_embedding(result.samples)
    clustering = cluster_samples(embeddings, result.n_groups)
    reps = np.asarray(result.sample_indices)
    if np.array_equal(clustering.representatives[: len(reps)], reps):
        return [sorted(int(i) for i in g) for g in clustering.groups[: len(reps)]]
    nearest = (embeddings @ embeddings[reps].T).argmax(axis=1)
    nearest[reps] = np.arange(len(reps))
    return [sorted(int(i) for i in np.flatnonzero(nearest == g)) for g in range(len(reps))]


class ExtractStage(Stage):
    """FineXtract per checkpoint on warm base models; see the module docstring."""

    name: ClassVar[str] = "extract"

    def __init__(
        self,
        settings: dict[str, Any],
        staging_root: str,
        device: str = "auto",
        max_warm_bases: int = 2,
        torch_threads: int | None = None,
    ) -> None:
        set_torch_threads(torch_threads)
        self.settings = ExtractSettings(**settings)
        self.config = extract_config(self.settings)
        self.staging_root = Path(staging_root)
        self.models = WarmModels(device, max_warm_bases)

    def order(self, items: list[ScanItem]) -> list[ScanItem]:
        """Group by base model so each warm base serves all its fine-tunes in a row."""
        return sorted(items, key=lambda it: (it.base_key or "", it.order))

    def process(self, item: ScanItem) -> None:
        pair = self.models.pair(item)
        result = extract(pair, self.config, method=self.settings.method)
        folder = self.staging_root / staging_name(item)
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(result.samples):
            save_png(image, folder / sample_name(i))
        members = group_members(result)
        item.groups = [
            {
                "rank": rank,
                "size": int(result.group_sizes[rank]),
                "score": float(result.scores[rank]),
                "representative": int(result.sample_indices[rank]),
                "seed": int(result.seeds[rank]),
                "members": members[rank],
            }
            for rank in range(len(result.images))
        ]
        item.staging_dir = str(folder)
        item.n_samples = len(result.samples)
        item.n_groups = int(result.n_groups)
        item.clustering_threshold = float(result.threshold)
        item.device = self.models.device
