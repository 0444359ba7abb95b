"""Diffusion model handles, model pairs, LoRA adapters and safe loading of untrusted files."""

from dmsec.models.base import Condition, DiffusionModel, NoisePredictor
from dmsec.models.loading import load_model
from dmsec.models.lora import LoraSpec, add_lora, load_lora, save_lora
from dmsec.models.pair import FullPair, LoraPair, ModelPair, make_pair
from dmsec.models.unet2d import ModelInfo, UNet2DHandle

__all__ = [
    "Condition",
    "DiffusionModel",
    "FullPair",
    "LoraPair",
    "LoraSpec",
    "ModelInfo",
    "ModelPair",
    "NoisePredictor",
    "UNet2DHandle",
    "add_lora",
    "load_lora",
    "load_model",
    "make_pair",
    "save_lora",
]
