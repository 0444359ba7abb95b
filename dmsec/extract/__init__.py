"""FineXtract (extrapolated guidance + clustering) and the direct-sampling baseline.

Extractors by name (`EXTRACTORS`): "finextract" (`FineXtract`) and "baseline" (`DirectSampling`).
"""

from dmsec.extract.clustering import Clustering, cluster_samples, greedy_cliques
from dmsec.extract.finextract import (
    EXTRACTORS,
    PAPER_DEFAULTS,
    DirectSampling,
    ExtractConfig,
    ExtractionResult,
    Extractor,
    FineXtract,
    extract,
    generate,
    generation_seed,
)
from dmsec.extract.guidance import extrapolated_noise

__all__ = [
    "EXTRACTORS",
    "PAPER_DEFAULTS",
    "Clustering",
    "DirectSampling",
    "ExtractConfig",
    "ExtractionResult",
    "Extractor",
    "FineXtract",
    "cluster_samples",
    "extract",
    "extrapolated_noise",
    "generate",
    "generation_seed",
    "greedy_cliques",
]
