"""Model pairs (pretrained, fine-tuned): the unit FineXtract and CGI-DM work on.

`predict_pair(x_pre, x_ft, t, cond_pre, cond_ft)` returns (ε_pre(x_pre, t, c_pre), ε_ft(x_ft, t, c_ft)).
- `FullPair`: two networks, two forwards (a full fine-tune changes every weight).
- `LoraPair`: ONE network carrying the adapter; both halves go through one batched forward, the
  first half with the adapter off ("__base__") and the second with it on — half the weights in
  memory and one kernel launch sequence per step instead of two.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from dmsec.errors import ConfigError
from dmsec.models.base import Condition, DiffusionModel
from dmsec.models.lora import BASE_ADAPTER, adapters_disabled, has_lora, mixed_adapter_batch


class ModelPair(ABC):
    """A pretrained model and its fine-tune, sharing one sample space and noise schedule."""

    kind: str
    #: the handle used for the schedule and for encoding/decoding images
    pretrained: DiffusionModel

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.pretrained.alphas_cumprod

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.pretrained.sample_shape

    @property
    def device(self) -> torch.device:
        return self.pretrained.device

    @abstractmethod
    def encode_pre(self, conditions: Sequence[Condition]) -> Any:
        """Encode conditions with the pretrained model's encoder."""

    @abstractmethod
    def encode_ft(self, conditions: Sequence[Condition]) -> Any:
        """Encode conditions with the fine-tuned model's encoder (it may have been fine-tuned too)."""

    @abstractmethod
    def predict_pair(
        self, x_pre: torch.Tensor, x_ft: torch.Tensor, t: torch.Tensor, cond_pre: Any, cond_ft: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε_pre(x_pre, t, c_pre), ε_ft(x_ft, t, c_ft))."""

    @abstractmethod
    def predict_ft(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """ε_ft alone (the direct-sampling baseline)."""

    @abstractmethod
    def finetuned_handle(self) -> DiffusionModel:
        """The fine-tuned model as a plain handle (for sampling it alone)."""

    @abstractmethod
    def predict_pre(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """ε_pre alone."""


class FullPair(ModelPair):
    """Two separate networks."""

    kind = "full"

    def __init__(self, pretrained: DiffusionModel, finetuned: DiffusionModel) -> None:
        if pretrained.sample_shape != finetuned.sample_shape:
            raise ConfigError(
                f"pair models disagree on sample shape: {pretrained.sample_shape} vs {finetuned.sample_shape}"
            )
        self.pretrained = pretrained
        self.finetuned = finetuned

    def encode_pre(self, conditions: Sequence[Condition]) -> Any:
        return self.pretrained.encode_condition(conditions)

    def encode_ft(self, conditions: Sequence[Condition]) -> Any:
        return self.finetuned.encode_condition(conditions)

    def predict_pair(
        self, x_pre: torch.Tensor, x_ft: torch.Tensor, t: torch.Tensor, cond_pre: Any, cond_ft: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pretrained.predict_noise(x_pre, t, cond_pre), self.finetuned.predict_noise(
            x_ft, t, cond_ft
        )

    def predict_ft(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        return self.finetuned.predict_noise(x_t, t, cond)

    def predict_pre(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        return self.pretrained.predict_noise(x_t, t, cond)

    def finetuned_handle(self) -> DiffusionModel:
        return self.finetuned


class LoraPair(ModelPair):
    """One network with a LoRA adapter: off = pretrained, on = fine-tuned, in one batched forward."""

    kind = "lora"

    def __init__(self, model: DiffusionModel, adapter_name: str = "default") -> None:
        if not has_lora(model.network):
            raise ConfigError("LoraPair needs a model with a LoRA adapter loaded")
        self.pretrained = model
        self.model = model
        self.adapter_name = adapter_name

    def encode_pre(self, conditions: Sequence[Condition]) -> Any:
        with _all_adapters_disabled(self.model):
            return self.model.encode_condition(conditions)

    def encode_ft(self, conditions: Sequence[Condition]) -> Any:
        return self.model.encode_condition(conditions)

    def predict_pair(
        self, x_pre: torch.Tensor, x_ft: torch.Tensor, t: torch.Tensor, cond_pre: Any, cond_ft: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = x_pre.shape[0]
        t = t.expand(n) if t.ndim == 0 else t
        names = [BASE_ADAPTER] * n + [self.adapter_name] * x_ft.shape[0]
        cond = self.model.concat_conditions(cond_pre, cond_ft)
        with mixed_adapter_batch(self.model.network, names):
            eps = self.model.predict_noise(torch.cat([x_pre, x_ft]), torch.cat([t, t]), cond)
        return eps[:n], eps[n:]

    def predict_ft(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        return self.model.predict_noise(x_t, t, cond)

    def predict_pre(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        with adapters_disabled(self.model.network):
            return self.model.predict_noise(x_t, t, cond)

    def finetuned_handle(self) -> DiffusionModel:
        return self.model


class _all_adapters_disabled:
    """Disable LoRA in every module of a handle (text encoder included) for a block."""

    def __init__(self, model: DiffusionModel) -> None:
        self.contexts = [adapters_disabled(m) for m in model.modules()]

    def __enter__(self) -> None:
        for c in self.contexts:
            c.__enter__()

    def __exit__(self, *exc: object) -> None:
        for c in reversed(self.contexts):
            c.__exit__(None, None, None)


def make_pair(pretrained: DiffusionModel, finetuned: DiffusionModel) -> ModelPair:
    """LoraPair when `finetuned` carries an adapter on the same network, FullPair otherwise."""
    if has_lora(finetuned.network):
        return LoraPair(finetuned)
    return FullPair(pretrained, finetuned)


def card_condition(model: DiffusionModel) -> Condition:
    """The instance condition the model was published with: its instance class, else the
    prompt its loader discovered (`dmsec.models.prompts`), else None (∅)."""
    info = getattr(model, "info", None)
    if info is not None and info.instance_class is not None:
        return int(info.instance_class)
    if info is not None and info.instance_prompt:
        return str(info.instance_prompt)
    return None


def instance_condition(pair: ModelPair) -> Condition:
    """The fine-tune's own condition c: its instance class, else its instance prompt, else ∅."""
    return card_condition(pair.finetuned_handle())
