"""A protection job over a folder: its config, its plan, and its outputs.

The output folder mirrors the input folder (each image's protected PNG at `output_name(source)`)
and holds

- ``manifest.parquet``: one row per input file (`dmsec.protect.step.MANIFEST_SCHEMA`), sorted by
  source, errors included;
- ``protect.json``: the resolved job and protector config, library versions, counts and wall
  time, so the run can be replayed (each image's seed is in the manifest).

`run_local` runs the job in this process; `pipelines/protect.py` runs the same `ProtectStep` on
Ray Data and then the same `finish_job`. Registering the originals in a protected-artwork
registry (`register_originals`) happens once, on the driver: a registry has one writer at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dmsec.config import from_mapping
from dmsec.errors import ConfigError
from dmsec.images import DecodeLimits
from dmsec.progress import progress as progress_bar
from dmsec.protect.advdm import AdvDMConfig
from dmsec.protect.io import list_images, output_name
from dmsec.protect.step import ProtectStep, error_row, rows_to_table
from dmsec.provenance import package_versions

MANIFEST_FILE = "manifest.parquet"
JOB_FILE = "protect.json"


@dataclass(frozen=True)
class ProtectJobConfig:
    """One protection job; `advdm` is the protector's config (`method` = "advdm")."""

    in_dir: str
    out_dir: str
    base: str
    method: str = "advdm"
    advdm: AdvDMConfig = field(default_factory=AdvDMConfig)
    batch_size: int = 8  # images per ProtectStep call (one PGD batch)
    num_actors: int = 1  # Ray actor pool size (pipelines/protect.py)
    device: str | None = None  # None: CUDA when available, else CPU
    registry: str | None = None  # register the originals here (local folder or s3://...)
    owner: str | None = None  # rights holder recorded with each registered original
    max_pixels: int = DecodeLimits().max_pixels

    def __post_init__(self) -> None:
        if self.method != "advdm":
            raise ConfigError(f"`method` must be one of ['advdm']; got {self.method!r}")
        if self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be >= 1; got {self.batch_size}")
        if self.num_actors < 1:
            raise ConfigError(f"`num_actors` must be >= 1; got {self.num_actors}")
        if self.registry is not None and not (self.owner and self.owner.strip()):
            raise ConfigError("`owner` is required when `registry` is given")
        if self.max_pixels < 1:
            raise ConfigError(f"`max_pixels` must be >= 1; got {self.max_pixels}")
        src, dst = Path(self.in_dir).resolve(), Path(self.out_dir).resolve()
        if src == dst or src in dst.parents or dst in src.parents:
            raise ConfigError(
                f"`out_dir` must not be `in_dir` or nested with it; got {self.out_dir!r} and {self.in_dir!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtectJobConfig:
        """Build from plain data (e.g. YAML) with `dmsec.config`'s loader: unknown keys, here or
        under `advdm`, are errors naming the dotted key."""
        return from_mapping(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def limits(self) -> DecodeLimits:
        return DecodeLimits(max_pixels=self.max_pixels)

    def make_step(self) -> ProtectStep:
        """The callable that protects one batch (what each Ray actor builds once)."""
        return ProtectStep(
            self.in_dir,
            self.out_dir,
            self.base,
            self.advdm,
            method=self.method,
            device=self.device,
            limits=self.limits,
            job_seed=self.advdm.seed,
        )


def plan_sources(in_dir: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The image files to protect, and error rows for any whose output name is already taken."""
    if not Path(in_dir).is_dir():
        raise ConfigError(f"`in_dir` must be a folder; got {str(in_dir)!r}")
    sources: list[str] = []
    collisions: list[dict[str, Any]] = []
    taken: dict[str, str] = {}
    for source in list_images(in_dir):
        name = output_name(source).lower()  # case-insensitive file systems collide too
        if name in taken:
            collisions.append(
                error_row(
                    source, f"output name {output_name(source)!r} is taken by {taken[name]!r}"
                )
            )
        else:
            taken[name] = source
            sources.append(source)
    return sources, collisions


def run_local(config: ProtectJobConfig, progress: bool = True) -> pa.Table:
    """Run the job in this process, batch by batch; returns the manifest (also written)."""
    started = time.perf_counter()
    sources, collisions = plan_sources(config.in_dir)
    Path(config.out_dir).mkdir(parents=True, exist_ok=True)
    step = config.make_step() if sources else None
    tables = [rows_to_table(collisions)]
    bar = progress_bar(
        total=len(sources), desc="protect", unit="img", enabled=progress
    )  # a line per batch in a log
    for start in range(0, len(sources), config.batch_size):
        chunk = sources[start : start + config.batch_size]
        assert step is not None
        tables.append(step({"source": chunk}))
        bar.update(len(chunk))
    bar.close()
    return finish_job(config, pa.concat_tables(tables), started, runner="local")


def register_originals(config: ProtectJobConfig, manifest: pa.Table) -> pa.Table:
    """Add the originals of the protected rows to `config.registry`; fills `artwork_id`.

    An original already registered (same bytes or identical codes) gets the existing id.
    """
    from dmsec.match.registry import ProtectedArtworkIndex

    ok = manifest.filter(pc.equal(manifest["status"], "ok"))
    sources = ok["source"].to_pylist()
    if not sources or config.registry is None:
        return manifest
    assert config.owner is not None
    registry = ProtectedArtworkIndex.open(config.registry, create=True, limits=config.limits)
    paths = [str(Path(config.in_dir) / s) for s in sources]
    report = registry.add(paths, owner=config.owner, source_uri=paths)
    ids: dict[str, int] = {}
    for added in report.added:
        ids[sources[added.index]] = added.artwork_id
    for dup in report.duplicates:
        ids[sources[dup.index]] = dup.existing_id
    column = [ids.get(s) for s in manifest["source"].to_pylist()]
    index = manifest.schema.get_field_index("artwork_id")
    return manifest.set_column(index, "artwork_id", pa.array(column, pa.int64()))


def finish_job(
    config: ProtectJobConfig, manifest: pa.Table, started: float, runner: str
) -> pa.Table:
    """Register originals (if asked), write manifest.parquet sorted by source and protect.json."""
    manifest = register_originals(config, manifest)
    manifest = manifest.sort_by("source")
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(manifest, out / MANIFEST_FILE)
    status = manifest["status"].to_pylist()
    record = {
        "config": config.to_dict(),
        "effective": {
            "alpha": config.advdm.effective_alpha,
            "t_max": "T - 1 of the base" if config.advdm.t_max is None else config.advdm.t_max,
        },
        "runner": runner,
        "versions": package_versions(),
        "images": len(status),
        "protected": status.count("ok"),
        "errors": status.count("error"),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    (out / JOB_FILE).write_text(json.dumps(record, indent=2, default=str))
    return manifest


def summarise(manifest: pa.Table) -> str:
    """One line: counts and the mean PSNR / SSIM / loss increase of the protected images."""
    ok = manifest.filter(pc.equal(manifest["status"], "ok"))
    errors = manifest.num_rows - ok.num_rows
    if ok.num_rows == 0:
        return f"protected 0 of {manifest.num_rows} images ({errors} errors)"

    def mean(col: str) -> float:
        return float(pc.mean(ok[col]).as_py())

    return (
        f"protected {ok.num_rows} of {manifest.num_rows} images ({errors} errors); "
        f"mean PSNR {mean('psnr'):.2f} dB, SSIM {mean('ssim'):.4f}, "
        f"training loss {mean('loss_clean'):.4f} -> {mean('loss_protected'):.4f}"
    )


def error_sources(manifest: pa.Table) -> Sequence[tuple[str, str]]:
    """(source, error) of every failed row."""
    bad = manifest.filter(pc.equal(manifest["status"], "error"))
    return list(zip(bad["source"].to_pylist(), bad["error"].to_pylist(), strict=True))
