"""Membership verifiers by name: CGI-DM and the loss-gap baseline behind one interface.

A `Verifier` answers, for a (pretrained, fine-tuned) pair and images suspected to be in its
fine-tuning set, with one `Evidence` per image. Registered in `VERIFIERS`:

- "cgi-dm" (`CgiDm`): contrasting gradient inversion; `score` is the recovered image's similarity
  to the original (higher = member), with the recovered image and the loss gap alongside;
- "loss-gap" (`LossGap`): the baseline the CGI-DM paper compares against, L_pre(x) − L_ft(x) on
  the untouched image (`baseline_gap`; no inversion, so no `score` and no recovered image).

Both take `CgiDmConfig` (the loss gap uses its `baseline_draws`, `t_min`/`t_max`, conditions and
`seed`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from dmsec.authenticate.evidence import Evidence, authenticate
from dmsec.authenticate.inversion import CgiDmConfig
from dmsec.models.pair import ModelPair
from dmsec.plugins import Registry


class Verifier(ABC):
    """Evidence that images were in a pair's fine-tuning set; see the module docstring."""

    #: unique short name: the key configs and the CLI select it by
    name: ClassVar[str]

    def __init__(self, config: CgiDmConfig | None = None) -> None:
        self.config = config or CgiDmConfig()

    @abstractmethod
    def verify(self, pair: ModelPair, images: torch.Tensor) -> list[Evidence]:
        """One `Evidence` per image of `images` (B, C, H, W) in [0, 1], at the model's size."""


VERIFIERS: Registry[Verifier] = Registry("verifier")


@VERIFIERS.register
class CgiDm(Verifier):
    """CGI-DM (arXiv 2403.11162), with the loss gap alongside."""

    name = "cgi-dm"

    def verify(self, pair: ModelPair, images: torch.Tensor) -> list[Evidence]:
        return authenticate(pair, images, self.config)


@VERIFIERS.register
class LossGap(Verifier):
    """The loss-gap baseline alone."""

    name = "loss-gap"

    def verify(self, pair: ModelPair, images: torch.Tensor) -> list[Evidence]:
        return authenticate(pair, images, self.config, invert=False)
