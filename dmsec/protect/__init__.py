"""Protect artworks against imitation by diffusion models (AdvDM, arXiv 2302.04578).

Protectors by name (`PROTECTORS`): "advdm" (`AdvDM`) and its control "random-noise"
(`RandomNoise`: random ±ε sign noise of the same budget, no gradient).
`AdvDM(model, AdvDMConfig(...)).protect(images)` perturbs images within an L∞ budget so that
fine-tuning on them teaches the model badly; `ProtectStep` / `run_local` protect folders of files
with a Parquet manifest (Ray: `pipelines/protect.py`).
"""

from dmsec.protect.advdm import PAPER_ALPHA, PAPER_EPS, PAPER_STEPS, AdvDM, AdvDMConfig
from dmsec.protect.base import PROTECTORS, ProtectionResult, Protector, protector_class
from dmsec.protect.noise import RandomNoise, RandomNoiseConfig
from dmsec.protect.quality import psnr, ssim

__all__ = [
    "PAPER_ALPHA",
    "PAPER_EPS",
    "PAPER_STEPS",
    "PROTECTORS",
    "AdvDM",
    "AdvDMConfig",
    "ProtectionResult",
    "RandomNoise",
    "RandomNoiseConfig",
    "Protector",
    "protector_class",
    "psnr",
    "ssim",
]
