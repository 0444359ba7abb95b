"""The direct-sampling baseline: the fine-tuned model alone, with classifier-free guidance.

Sampling the fine-tune at its instance condition (guidance scale `guidance_scale`, 3 by default)
and clustering the generations like FineXtract does is the baseline FineXtract is measured
against: same seeds, same clustering, same budget (docs/methods/finextract.md).
"""

from __future__ import annotations

from dmsec.extract.base import EXTRACTORS, ExtractConfig, Extractor
from dmsec.extract.guidance import cfg_eps
from dmsec.models.base import Condition
from dmsec.models.pair import ModelPair
from dmsec.sampling import EpsFn


@EXTRACTORS.register
class DirectSampling(Extractor):
    """The baseline: the fine-tuned model alone, classifier-free guidance `guidance_scale`."""

    name = "baseline"

    def guided_noise(self, pair: ModelPair, config: ExtractConfig, condition: Condition, n: int) -> EpsFn:  # fmt: skip
        cond_null = pair.encode_ft([None] * n) if condition is not None else None
        return cfg_eps(pair, cond_null, pair.encode_ft([condition] * n), config.guidance_scale)
