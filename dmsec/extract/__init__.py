"""FineXtract (extrapolated guidance + clustering) and the direct-sampling baseline.

Extractors by name (`EXTRACTORS`): "finextract" (`FineXtract`) and "baseline" (`DirectSampling`);
the interface, config and registry live in `dmsec.extract.base`, one method per module.
"""

from dmsec.extract.base import (
    EXTRACTORS,
    GUIDANCE_PRESETS,
    PAPER_DEFAULTS,
    ExtractConfig,
    ExtractionResult,
    Extractor,
    GuidancePreset,
    cluster_generations,
    default_batch_size,
    extract,
    generate,
    generation_seed,
    guidance_preset,
    seeded_noise,
)
from dmsec.extract.clustering import Clustering, cluster_samples, greedy_cliques
from dmsec.extract.direct import DirectSampling
from dmsec.extract.finextract import FineXtract
from dmsec.extract.guidance import extrapolated_noise

__all__ = [
    "EXTRACTORS",
    "GUIDANCE_PRESETS",
    "PAPER_DEFAULTS",
    "Clustering",
    "DirectSampling",
    "ExtractConfig",
    "ExtractionResult",
    "Extractor",
    "FineXtract",
    "GuidancePreset",
    "cluster_generations",
    "cluster_samples",
    "default_batch_size",
    "extract",
    "extrapolated_noise",
    "generate",
    "generation_seed",
    "greedy_cliques",
    "guidance_preset",
    "seeded_noise",
]
