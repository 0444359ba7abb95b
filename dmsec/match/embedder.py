"""The embedder interface and the registry of embedders by name.

An embedder turns decoded RGB images (``(H, W, 3)`` float32 arrays in [0, 1], see
`dmsec.match.images`) into fixed-size codes that one FAISS index per embedder can search:

- ``metric = "hamming"``: packed bits, ``(B, dim // 8)`` uint8 (PDQ). Scores are Hamming
  distances; a pair matches when ``distance <= threshold``.
- ``metric = "inner_product"``: L2-normalised float32, ``(B, dim)``. Scores are cosine
  similarities; a pair matches when ``similarity >= threshold``.

Each implementation has a unique short `name` (as in python-threatexchange's signal types): it is
the key under which a registry stores the embedder's column and index file, and the name the CLI
and configs select it by. `config()` returns the JSON-able keyword arguments that rebuild the same
embedder, so a registry can record what produced its codes.
"""

from __future__ import annotations

import importlib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from dmsec.match.errors import EmbedderError

Metric = Literal["hamming", "inner_product"]

# Names an embedder may not take: they are the metadata columns of artworks.parquet.
RESERVED_NAMES = frozenset(
    {"id", "owner", "title", "source_uri", "sha256", "added_at", "width", "height"}
)
_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,31}$")

# Built-in embedders, imported only when asked for (the dense ones need transformers).
_BUILTIN: dict[str, str] = {
    "pdq": "dmsec.match.pdq:PdqEmbedder",
    "zoo": "dmsec.match.zoo:ZooEmbedder",
    "art": "dmsec.match.zoo:ArtEmbedder",
    "dinov2": "dmsec.match.dense:Dinov2Embedder",
    "clip": "dmsec.match.dense:ClipEmbedder",
}
_REGISTERED: dict[str, type[Embedder]] = {}


class Embedder(ABC):
    """Maps decoded images to codes for one FAISS index; see the module docstring."""

    name: ClassVar[str]
    metric: ClassVar[Metric]

    @property
    @abstractmethod
    def dim(self) -> int:
        """Bits per code for Hamming embedders, floats per vector for inner-product ones."""

    @property
    @abstractmethod
    def default_threshold(self) -> float | None:
        """The match threshold used when a search names none; None means it must be given."""

    @abstractmethod
    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Codes for `images` (each ``(H, W, 3)`` float32 in [0, 1]): see the module docstring."""

    def config(self) -> dict[str, Any]:
        """JSON-able keyword arguments that rebuild this embedder via `from_config`."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Embedder:
        """The embedder that `config()` describes."""
        return cls(**dict(config))

    @property
    def code_size(self) -> int:
        """Bytes per code in FAISS: dim/8 for bits, 4*dim for float32."""
        return self.dim // 8 if self.metric == "hamming" else 4 * self.dim

    def arrow_type(self) -> pa.DataType:
        """The artworks.parquet column type holding this embedder's codes."""
        if self.metric == "hamming":
            return pa.binary(self.dim // 8)
        return pa.list_(pa.float32(), self.dim)

    def validate_threshold(self, threshold: float | None) -> float:
        """`threshold` (or the default) checked against the metric's range; raises naming it."""
        if threshold is None:
            threshold = self.default_threshold
            if threshold is None:
                raise EmbedderError(
                    f"`threshold` is required for embedder {self.name!r}: it has no calibrated "
                    "default (pass threshold=..., or k=... for top-k search)"
                )
        value = float(threshold)
        if self.metric == "hamming":
            if not (0 <= value <= self.dim) or value != math.floor(value):
                raise EmbedderError(
                    f"`threshold` must be an integer in [0, {self.dim}] for Hamming embedder "
                    f"{self.name!r}; got {threshold}"
                )
        elif not (-1.0 <= value <= 1.0) or math.isnan(value):
            raise EmbedderError(
                f"`threshold` must be in [-1, 1] for inner-product embedder {self.name!r}; "
                f"got {threshold}"
            )
        return value

    def check_codes(self, codes: np.ndarray, what: str = "codes") -> np.ndarray:
        """`codes` as a C-contiguous array of this embedder's dtype and width, or raise."""
        dtype = np.uint8 if self.metric == "hamming" else np.float32
        width = self.dim // 8 if self.metric == "hamming" else self.dim
        arr = np.ascontiguousarray(codes)
        if arr.ndim != 2 or arr.shape[1] != width or arr.dtype != dtype:
            raise EmbedderError(
                f"`{what}` for embedder {self.name!r} must be a (N, {width}) {np.dtype(dtype)} "
                f"array; got {arr.shape} {arr.dtype}"
            )
        return arr

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def register_embedder(cls: type[Embedder]) -> type[Embedder]:
    """Class decorator: make `cls` selectable by its `name`; names must be unique."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or name in RESERVED_NAMES:
        raise EmbedderError(
            f"`name` of {cls.__name__} must match {_NAME_PATTERN.pattern} and not be one of "
            f"{sorted(RESERVED_NAMES)}; got {name!r}"
        )
    existing = _REGISTERED.get(name)
    builtin = _BUILTIN.get(name)
    qualified = f"{cls.__module__}:{cls.__qualname__}"
    if (existing is not None and existing is not cls) or (builtin and builtin != qualified):
        raise EmbedderError(f"an embedder named {name!r} is already registered")
    _REGISTERED[name] = cls
    return cls


def embedder_names() -> list[str]:
    """Names of every known embedder, built-in and registered."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def embedder_class(name: str) -> type[Embedder]:
    """The embedder class registered under `name`; raises `EmbedderError` naming the choices."""
    if name not in _REGISTERED and name in _BUILTIN:
        module_name, attr = _BUILTIN[name].split(":")
        importlib.import_module(module_name)  # its @register_embedder fills _REGISTERED
        if name not in _REGISTERED:  # pragma: no cover - a built-in forgot its decorator
            _REGISTERED[name] = getattr(importlib.import_module(module_name), attr)
    if name not in _REGISTERED:
        raise EmbedderError(f"unknown embedder {name!r}; known: {', '.join(embedder_names())}")
    return _REGISTERED[name]


def create_embedder(name: str, config: Mapping[str, Any] | None = None) -> Embedder:
    """An embedder by name, built from its `config()` dictionary."""
    return embedder_class(name).from_config(config or {})
