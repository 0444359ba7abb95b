"""Learned dense embedders through transformers: DINOv2 (CLS token) and CLIP (image embeds).

Weights are loaded only from what is already on disk: a `save_pretrained` folder, or a Hugging
Face repo id (``facebook/dinov2-small``) found in the local Hugging Face cache (`cache_dir`, or
the default cache). Loading uses ``local_files_only=True`` and safetensors only, so nothing is
downloaded and no pickle is unpickled. The registry records a fingerprint (sha256 of the config
and weight files) so a search with different weights than the registry was built with fails
loudly instead of returning meaningless scores.

References: Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision" (2023);
Radford et al., "Learning Transferable Visual Models From Natural Language Supervision" (2021).
Known limits: neither model is trained for copy detection (SSCD is, but its weights are
CC-BY-NC); their cosine similarity between a copy and its source depends on the checkpoint, so
there is no calibrated default threshold: calibrate one on your data and pass it as `threshold`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from dmsec.images import rgb_to_uint8
from dmsec.match.embedder import Embedder, Metric, register_embedder
from dmsec.match.errors import EmbedderError


def resolve_model_dir(model_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """`model_path` if it is a folder, else the cached snapshot of that Hugging Face repo id."""
    path = Path(model_path).expanduser()
    if path.is_dir():
        return path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(model_path)):
        from huggingface_hub import snapshot_download

        try:
            found = snapshot_download(str(model_path), cache_dir=cache_dir, local_files_only=True)
        except Exception as exc:  # huggingface_hub raises several types for "not cached"
            raise EmbedderError(
                f"`model_path` {model_path!r} is neither a folder nor a repo in the local Hugging "
                f"Face cache ({type(exc).__name__}); nothing is downloaded"
            ) from None
        return Path(str(found))
    raise EmbedderError(f"`model_path` {model_path} is not a folder")


def model_fingerprint(model_path: str | Path) -> str:
    """sha256 over the config and safetensors weight files of a model folder."""
    root = Path(model_path)
    files = sorted(root.glob("*.safetensors")) + [root / "config.json"]
    if not root.is_dir() or not (root / "config.json").is_file() or len(files) < 2:
        raise EmbedderError(
            f"`model_path` {root} must be a folder with config.json and *.safetensors weights"
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()


class TransformersEmbedder(Embedder):
    """A vision model from a local transformers folder; L2-normalised float32 embeddings."""

    metric: ClassVar[Metric] = "inner_product"

    def __init__(
        self,
        model_path: str | Path,
        *,
        cache_dir: str | Path | None = None,
        threshold: float | None = None,
        fingerprint: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise EmbedderError(f"`batch_size` must be >= 1; got {batch_size}")
        local = Path(model_path).expanduser()
        self.model_path = str(local.resolve()) if local.is_dir() else str(model_path)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self._dir: Path | None = None
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._threshold = threshold
        self._expected_fingerprint = fingerprint
        self._fingerprint: str | None = None
        self._dim: int | None = None
        self._model: Any = None
        self._processor: Any = None
        self._lock = threading.Lock()
        if threshold is not None:
            self.validate_threshold(threshold)

    @property
    def model_dir(self) -> Path:
        """The local folder holding the model (resolved once)."""
        if self._dir is None:
            self._dir = resolve_model_dir(self.model_path, self.cache_dir)
        return self._dir

    # -- what subclasses provide ---------------------------------------------------------------
    def _load_model(self) -> Any:
        raise NotImplementedError

    def _dim_from_config(self, config: Any) -> int:
        raise NotImplementedError

    def _forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- Embedder --------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Width of the model's embedding, read from its config."""
        if self._dim is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(self.model_dir), local_files_only=True)
            self._dim = int(self._dim_from_config(config))
        return self._dim

    @property
    def default_threshold(self) -> float | None:
        """The threshold given at construction; there is no calibrated default."""
        return self._threshold

    @property
    def fingerprint(self) -> str:
        """sha256 of the model's config and weights (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model_dir)
        return self._fingerprint

    def config(self) -> dict[str, Any]:
        """Model path, fingerprint and threshold: enough to rebuild and to verify the weights."""
        out: dict[str, Any] = {"model_path": self.model_path, "fingerprint": self.fingerprint}
        if self.cache_dir is not None:
            out["cache_dir"] = self.cache_dir
        if self._threshold is not None:
            out["threshold"] = self._threshold
        return out

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings, (B, dim) float32, computed in batches of `batch_size`."""
        self._ensure_loaded()
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = [rgb_to_uint8(p) for p in images[start : start + self.batch_size]]
            inputs = self._processor(images=chunk, return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device, dtype=torch.float32)
            with torch.inference_mode():
                emb = self._forward(pixel_values).float()
            emb = torch.nn.functional.normalize(emb, dim=1)
            out[start : start + len(chunk)] = emb.cpu().numpy()
        return out

    def _ensure_loaded(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            fingerprint = self.fingerprint  # also checks config.json and *.safetensors exist
            expected = self._expected_fingerprint
            if expected is not None and fingerprint != expected:
                raise EmbedderError(
                    f"model at {self.model_path} (fingerprint {fingerprint[:12]}) is not the "
                    f"one this registry was built with (fingerprint {expected[:12]}); point "
                    "`model_path` at the original weights or rebuild the registry"
                )
            from transformers import AutoImageProcessor

            try:
                self._processor = AutoImageProcessor.from_pretrained(
                    str(self.model_dir), local_files_only=True
                )
                model = self._load_model()
            except (OSError, ValueError) as exc:
                raise EmbedderError(
                    f"cannot load {self.name} from {self.model_path}: {exc}"
                ) from None
            self._model = model.to(self.device, dtype=torch.float32).eval()


@register_embedder
class Dinov2Embedder(TransformersEmbedder):
    """DINOv2's final-layer CLS token (``pooler_output``), L2-normalised."""

    name: ClassVar[str] = "dinov2"

    def _load_model(self) -> Any:
        from transformers import Dinov2Model

        return Dinov2Model.from_pretrained(
            str(self.model_dir), local_files_only=True, use_safetensors=True
        )

    def _dim_from_config(self, config: Any) -> int:
        if config.model_type != "dinov2":
            raise EmbedderError(
                f"`model_path` {self.model_path} holds a {config.model_type!r} model, not dinov2"
            )
        return int(config.hidden_size)

    def _forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._model(pixel_values=pixel_values).pooler_output


@register_embedder
class ClipEmbedder(TransformersEmbedder):
    """CLIP's projected image embedding (``image_embeds``), L2-normalised."""

    name: ClassVar[str] = "clip"

    def _load_model(self) -> Any:
        from transformers import CLIPVisionModelWithProjection

        return CLIPVisionModelWithProjection.from_pretrained(
            str(self.model_dir), local_files_only=True, use_safetensors=True
        )

    def _dim_from_config(self, config: Any) -> int:
        if config.model_type not in ("clip", "clip_vision_model"):
            raise EmbedderError(
                f"`model_path` {self.model_path} holds a {config.model_type!r} model, not clip"
            )
        return int(config.projection_dim)

    def _forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._model(pixel_values=pixel_values).image_embeds
