"""FineXtract (extrapolated model guidance + clustering) and the direct-sampling baseline."""

from dmsec.extract.clustering import Clustering, cluster_samples, greedy_cliques
from dmsec.extract.finextract import (
    PAPER_DEFAULTS,
    ExtractConfig,
    ExtractionResult,
    extract,
    generate,
)
from dmsec.extract.guidance import extrapolated_noise

__all__ = [
    "PAPER_DEFAULTS",
    "Clustering",
    "ExtractConfig",
    "ExtractionResult",
    "cluster_samples",
    "extract",
    "extrapolated_noise",
    "generate",
    "greedy_cliques",
]
