"""FineXtract: extrapolated guidance from the pretrained towards the fine-tuned model.

Each step predicts ε_pre + w·(ε_ft − ε_pre) + k·ε_pre (`dmsec.extract.guidance.finextract_eps`):
the fine-tune's shift from its base, amplified w times, steers the generations towards what the
fine-tuning data added; the generations are then clustered and ranked by the shared steps of
`dmsec.extract.base`. w and k default per fine-tune kind (`ExtractConfig.defaults`, a guidance
preset). The algorithm, its defaults and limits: docs/methods/finextract.md.
"""

from __future__ import annotations

from dmsec.extract.base import EXTRACTORS, ExtractConfig, Extractor
from dmsec.extract.guidance import finextract_eps
from dmsec.models.base import Condition
from dmsec.models.pair import ModelPair
from dmsec.sampling import EpsFn

__all__ = ["FineXtract"]


@EXTRACTORS.register
class FineXtract(Extractor):
    """Extrapolated guidance ε_pre + w·(ε_ft − ε_pre) + k·ε_pre (see `dmsec.extract.guidance`)."""

    name = "finextract"

    def guided_noise(self, pair: ModelPair, config: ExtractConfig, condition: Condition, n: int) -> EpsFn:  # fmt: skip
        assert config.w is not None and config.k is not None
        cond_pre, cond_ft = pair.encode_pre([None] * n), pair.encode_ft([condition] * n)
        return finextract_eps(pair, cond_pre, cond_ft, config.w, config.k)
