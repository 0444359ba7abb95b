"""Protect artworks against imitation by diffusion models (AdvDM, arXiv 2302.04578).

`AdvDM(model, AdvDMConfig(...)).protect(images)` perturbs images within an L∞ budget so that
fine-tuning on them teaches the model badly; `ProtectStep` / `run_local` protect folders of files
with a Parquet manifest (Ray: `pipelines/protect.py`).
"""

from dmsec.protect.advdm import PAPER_ALPHA, PAPER_EPS, PAPER_STEPS, AdvDM, AdvDMConfig
from dmsec.protect.base import PROTECTORS, ProtectionResult, Protector, protector_class
from dmsec.protect.quality import psnr, ssim

__all__ = [
    "PAPER_ALPHA",
    "PAPER_EPS",
    "PAPER_STEPS",
    "PROTECTORS",
    "AdvDM",
    "AdvDMConfig",
    "ProtectionResult",
    "Protector",
    "protector_class",
    "psnr",
    "ssim",
]
