"""The noise-prediction interface every method uses, and the handle base class.

A handle wraps one diffusion model and answers "given x_t, t and a condition, what noise does this
model predict" (`predict_noise`). Conditions are given as plain values and encoded once per batch
by `encode_condition`: class ids (int) for the zoo's class-conditional UNet, prompts (str) for
Stable Diffusion, and `None` for the null condition ∅ (null class / empty prompt).

Diffusion runs in the handle's *model space*: pixels in [-1, 1] for pixel models, VAE latents for
latent models; `encode_images` / `decode` convert from / to images in [0, 1].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

Condition = int | str | None


@dataclass(frozen=True)
class Prompt:
    """The prompt a model was published with (None: ∅) and its source (`dmsec.models.prompts`)."""

    text: str | None
    source: str


class NoisePredictor(Protocol):
    """Anything that predicts the noise in x_t: the one protocol samplers and methods need."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


class DiffusionModel(ABC):
    """A diffusion model handle: a network plus its noise schedule and condition encoder."""

    #: "unet2d" or "stable-diffusion"; used in manifests and errors.
    family: str
    #: the trainable noise-prediction network (a diffusers UNet).
    network: Any  # a diffusers UNet (diffusers' mixins defeat mypy's nn.Module checks)
    #: ᾱ_t for t = 0..T-1, float32 on the handle's device.
    alphas_cumprod: torch.Tensor
    #: the prompt the loader found published with the model, and its source (`dmsec.models.prompts`)
    prompt: Prompt | None = None

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    @abstractmethod
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample in model space, e.g. (1, 16, 16) or (4, 8, 8) for latents."""

    @abstractmethod
    def encode_condition(self, conditions: Sequence[Condition]) -> Any:
        """Encode one condition per sample (None = ∅) into what `predict_noise` takes."""

    def encode_condition_trainable(self, conditions: Sequence[Condition]) -> Any:
        """Like `encode_condition`, with gradients through the condition encoder (to train it)."""
        from dmsec.errors import ConfigError

        raise ConfigError(f"{self.family!r} models have no trainable condition encoder")

    @abstractmethod
    def concat_conditions(self, a: Any, b: Any) -> Any:
        """Join two encoded condition batches along the batch dimension."""

    @abstractmethod
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """ε_θ(x_t, t, c): the predicted noise, same shape as x_t."""

    @abstractmethod
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> x_0 in model space."""

    @abstractmethod
    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """x_0 in model space -> images (B, C, H, W) in [0, 1]."""

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> DiffusionModel:
        """Move the handle (all its modules and the schedule) to a device / dtype, in place."""
        for module in self.modules():
            module.to(device) if dtype is None else module.to(device=device, dtype=dtype)
        self.alphas_cumprod = self.alphas_cumprod.to(device)
        return self

    def modules(self) -> list[Any]:
        """All torch modules the handle owns (network, text encoder, VAE...)."""
        return [self.network]

    def eval(self) -> DiffusionModel:
        for module in self.modules():
            module.eval()
        return self

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε."""
        a = self.alphas_cumprod[t].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def noise_predictor(self, cond: Any) -> NoisePredictor:
        """Bind a condition: returns eps(x_t, t) for the sampler."""
        return lambda x_t, t: self.predict_noise(x_t, t, cond)
