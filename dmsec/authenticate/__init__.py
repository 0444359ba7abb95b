"""CGI-DM: copyright evidence for a (pretrained, fine-tuned) pair and a suspected training image.

Paper: "CGI-DM: Digital Copyright Authentication for Diffusion Models via Contrasting Gradient
Inversion" (Wu et al., CVPR 2024, arXiv 2403.11162); the method in our words: docs/methods/cgi-dm.md.

API the scan calls per match (checkpoint pair x protected artwork)::

    from dmsec.authenticate import CgiDmConfig, authenticate, to_model_images
    images = to_model_images(pair.pretrained, [rgb])        # decoded (H, W, 3) arrays in [0, 1]
    evidence = authenticate(pair, images, CgiDmConfig())    # one Evidence per image
    evidence[0].score            # similarity(recovered, original): CGI-DM's score, higher = member
    evidence[0].recovered_image  # (C, H, W) in [0, 1]: the visual evidence for the report
    evidence[0].baseline_gap     # L_pre(x) − L_ft(x) without inversion (the baseline)

`pair` is any `dmsec.models.pair.ModelPair` (full or LoRA; pixel-space UNet or latent Stable
Diffusion); several images of one checkpoint go in one call (they share the PGD batch).

Modules: `masking` (block-wise mask), `inversion` (L2 PGD on the removed entries, the paper's
defaults scaled to the model), `loss_gap` (the baseline), `evidence` (scores, `Evidence`),
`inputs` (decoded images to the model's size), `verifier` (CGI-DM and the loss gap by name,
`VERIFIERS`), `cli` (`dmsec authenticate`).
"""

from dmsec.authenticate.evidence import (
    Evidence,
    authenticate,
    embedder_similarity,
    instance_condition,
    pixel_similarity,
)
from dmsec.authenticate.inputs import model_image_shape, to_model_images
from dmsec.authenticate.inversion import (
    CgiDmConfig,
    InversionResult,
    contrasting_gradient_inversion,
)
from dmsec.authenticate.loss_gap import loss_gap
from dmsec.authenticate.masking import block_keep_mask, mask_out
from dmsec.authenticate.verifier import VERIFIERS, CgiDm, LossGap, Verifier

__all__ = [
    "VERIFIERS",
    "CgiDm",
    "CgiDmConfig",
    "Evidence",
    "InversionResult",
    "LossGap",
    "Verifier",
    "authenticate",
    "block_keep_mask",
    "contrasting_gradient_inversion",
    "embedder_similarity",
    "instance_condition",
    "loss_gap",
    "mask_out",
    "model_image_shape",
    "pixel_similarity",
    "to_model_images",
]
