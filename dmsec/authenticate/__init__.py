"""CGI-DM: copyright evidence for a (pretrained, fine-tuned) pair and a suspected training image.

Paper: "CGI-DM: Digital Copyright Authentication for Diffusion Models via Contrasting Gradient
Inversion" (Wu et al., CVPR 2024, arXiv 2403.11162); spec: docs/papers/cgi-dm.md.

API the scan calls per match::

    from dmsec.authenticate import CgiDmConfig, authenticate
    evidence = authenticate(pair, images, CgiDmConfig())   # images (B, C, H, W) in [0, 1]
    evidence[i].score            # similarity(recovered, original): CGI-DM's score, higher = member
    evidence[i].recovered_image  # (C, H, W) in [0, 1]: the visual evidence
    evidence[i].baseline_gap     # L_pre(x) − L_ft(x) without inversion (the baseline)

`pair` is any `dmsec.models.pair.ModelPair` (full or LoRA; pixel-space UNet or latent Stable
Diffusion). Modules: `masking` (block-wise mask), `inversion` (L2 PGD on the removed entries,
the paper's defaults scaled to the model), `loss_gap` (baseline), `evidence` (scores, `Evidence`),
`cli` (`dmsec authenticate`).
"""

from dmsec.authenticate.evidence import (
    Evidence,
    authenticate,
    embedder_similarity,
    instance_condition,
    pixel_similarity,
)
from dmsec.authenticate.inversion import (
    CgiDmConfig,
    InversionResult,
    contrasting_gradient_inversion,
)
from dmsec.authenticate.loss_gap import loss_gap
from dmsec.authenticate.masking import block_keep_mask, mask_out

__all__ = [
    "CgiDmConfig",
    "Evidence",
    "InversionResult",
    "authenticate",
    "block_keep_mask",
    "contrasting_gradient_inversion",
    "embedder_similarity",
    "instance_condition",
    "loss_gap",
    "mask_out",
    "pixel_similarity",
]
