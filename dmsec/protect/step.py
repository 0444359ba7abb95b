"""`ProtectStep`: protect one batch of image files and return their manifest rows.

Written in Ray Data's callable-class shape — the model is loaded once in `__init__`, each
`__call__` handles one batch of rows `{"source": [...]}` — so the very same object runs in a unit
test, in `dmsec protect` (one process) and in `pipelines/protect.py` (`map_batches` over an actor
pool). Each input's failure is isolated: an undecodable file becomes a row with
``status="error"`` and its reason, and when protecting the whole batch fails the images are
retried one by one, so only the image that fails gets an error row.

Manifest rows (`MANIFEST_SCHEMA`, one per input file):

================  =========  ====================================================================
column            type       meaning
================  =========  ====================================================================
source            string     input path relative to the input folder
output            string     protected PNG relative to the output folder (null on error)
status            string     "ok" or "error"
error             string     why it failed (null when ok)
sha256            string     sha256 of the input file
protected_sha256  string     sha256 of the written PNG
width, height     int32      input size as decoded
out_width/height  int32      protected image size (the model's input size)
resized           bool       whether the input was resized to the model's size
seed              int64      the image's PGD seed (from the job seed and the file's hash)
psnr, ssim        float64    protected vs original at the model's size (dB; 1 = identical)
linf              float64    ‖δ‖∞ on the [0, 1] scale
loss_clean        float64    model's training loss on the original (held-out draws)
loss_protected    float64    same draws, on the protected image
seconds           float64    this image's share of its batch's wall time
artwork_id        int64      id of the original in the protected-artwork registry (if any)
================  =========  ====================================================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import torch

from dmsec.errors import ImageDecodeError
from dmsec.images import DecodeLimits
from dmsec.models.loading import load_model
from dmsec.protect.base import ProtectionResult, protector_class
from dmsec.protect.io import (
    InputImage,
    image_seed,
    model_image_shape,
    output_name,
    read_image,
    write_png,
)

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("output", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("protected_sha256", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("out_width", pa.int32()),
        pa.field("out_height", pa.int32()),
        pa.field("resized", pa.bool_()),
        pa.field("seed", pa.int64()),
        pa.field("psnr", pa.float64()),
        pa.field("ssim", pa.float64()),
        pa.field("linf", pa.float64()),
        pa.field("loss_clean", pa.float64()),
        pa.field("loss_protected", pa.float64()),
        pa.field("seconds", pa.float64()),
        pa.field("artwork_id", pa.int64()),
    ],
    metadata={b"dmsec.schema": b"protect-manifest/1"},
)


def error_row(source: str, reason: str, **known: Any) -> dict[str, Any]:
    """A manifest row for an input that could not be protected."""
    return {"source": source, "status": "error", "error": reason, **known}


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Manifest rows (missing columns null) -> an Arrow table with `MANIFEST_SCHEMA`."""
    names = MANIFEST_SCHEMA.names
    return pa.Table.from_pylist(
        [{k: r.get(k) for k in names} for r in rows], schema=MANIFEST_SCHEMA
    )


def safe_relative(source: str) -> PurePosixPath:
    """`source` as a relative path that cannot leave its folder (no absolute path, no `..`)."""
    rel = PurePosixPath(source)
    if not source or rel.is_absolute() or ".." in rel.parts or "\\" in source:
        raise ValueError(
            f"`source` must be a relative path inside the input folder; got {source!r}"
        )
    return rel


class ProtectStep:
    """Protect batches of files from `in_dir` into `out_dir` with protector `method` against the
    model at `base`; `protector_config` is that protector's config (e.g. `AdvDMConfig`)."""

    def __init__(
        self,
        in_dir: str | Path,
        out_dir: str | Path,
        base: str | Path,
        protector_config: Any = None,
        *,
        method: str = "advdm",
        device: str | None = None,
        limits: DecodeLimits | None = None,
        job_seed: int = 0,
    ) -> None:
        self.in_dir, self.out_dir = Path(in_dir), Path(out_dir)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_model(base, device=self.device).eval()
        self.protector = protector_class(method)(self.model, protector_config)
        self.shape = model_image_shape(self.model)
        self.limits = limits or DecodeLimits()
        self.job_seed = job_seed

    def __call__(self, batch: Any) -> pa.Table:
        """Protect the files named in `batch["source"]`; returns one manifest row per file."""
        columns = batch.to_pydict() if isinstance(batch, pa.Table) else batch
        sources = [str(s) for s in columns["source"]]
        rows: dict[str, dict[str, Any]] = {}
        inputs: dict[str, InputImage] = {}
        # 1. decode each file safely; a bad one becomes an error row
        for source in sources:
            try:
                rel = safe_relative(source)
                inputs[source] = read_image(self.in_dir / rel, self.shape, self.limits)
            except ImageDecodeError as exc:
                rows[source] = error_row(source, f"cannot decode: {exc.reason}")
            except ValueError as exc:
                rows[source] = error_row(source, str(exc))
        # 2. protect the decoded ones together; on failure, one by one
        for source, row in self._protect_isolated(inputs).items():
            rows[source] = row
        return rows_to_table([rows[s] for s in sources])

    def _protect_isolated(self, inputs: dict[str, InputImage]) -> dict[str, dict[str, Any]]:
        if not inputs:
            return {}
        try:
            return self._protect(inputs)
        except Exception as exc:  # isolate: retry each image alone so only the culprit fails
            if len(inputs) == 1:
                source, image = next(iter(inputs.items()))
                log.warning("protecting %s failed: %r", source, exc)
                return {source: self._failed(source, image, exc)}
            log.warning("batch of %d failed (%r); retrying one by one", len(inputs), exc)
            out: dict[str, dict[str, Any]] = {}
            for source, image in inputs.items():
                out.update(self._protect_isolated({source: image}))
            return out

    def _protect(self, inputs: dict[str, InputImage]) -> dict[str, dict[str, Any]]:
        started = time.perf_counter()
        images = torch.stack([i.pixels for i in inputs.values()])
        seeds = [image_seed(self.job_seed, i.sha256) for i in inputs.values()]
        result = self.protector.protect(images, seeds)
        outputs = {}
        for k, source in enumerate(inputs):
            name = output_name(str(safe_relative(source)))
            outputs[source] = (name, write_png(result.images[k], self.out_dir / name))
        seconds = (time.perf_counter() - started) / len(inputs)
        return {
            source: self._ok_row(source, image, result, k, *outputs[source], seconds)
            for k, (source, image) in enumerate(inputs.items())
        }

    def _ok_row(
        self,
        source: str,
        image: InputImage,
        result: ProtectionResult,
        k: int,
        output: str,
        protected_sha256: str,
        seconds: float,
    ) -> dict[str, Any]:
        return {
            **self._input_fields(source, image),
            "output": output,
            "status": "ok",
            "protected_sha256": protected_sha256,
            "seed": result.seeds[k],
            "psnr": float(result.psnr[k]),
            "ssim": float(result.ssim[k]),
            "linf": float(result.linf[k]),
            "loss_clean": float(result.loss_clean[k]),
            "loss_protected": float(result.loss_protected[k]),
            "seconds": seconds,
        }

    def _failed(self, source: str, image: InputImage, exc: Exception) -> dict[str, Any]:
        fields = self._input_fields(source, image)
        del fields["source"]
        return error_row(source, f"protection failed: {type(exc).__name__}: {exc}", **fields)

    def _input_fields(self, source: str, image: InputImage) -> dict[str, Any]:
        _, height, width = self.shape
        return {
            "source": source,
            "sha256": image.sha256,
            "width": image.width,
            "height": image.height,
            "out_width": width,
            "out_height": height,
            "resized": image.resized,
        }
