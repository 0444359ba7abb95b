"""The scan's configuration: frozen dataclasses per section, loaded from YAML with overrides.

    config = load_scan_config("configs/scan.yaml", ["extract.n_samples=64", "run.extract_actors=1"])

Sections: `source` (which hub, which refs), `registry` (what to match against), `pull` (download
policy), `extract` (FineXtract), `match`, `authenticate` (CGI-DM), `run` (executor, Ray resources,
devices) and `results` (where and how findings are written). Unknown keys anywhere are errors that
name the dotted key; values are type-checked against the annotations and validated by each
section, with messages naming the field. The dataclass defaults *are* the embedded default scan
(the tiny zoo as a local hub), and `configs/scan.yaml` spells the same values out.

`--set key=value` values are parsed as YAML scalars (`extract.w=1.5`, `source.kinds=[lora]`,
`registry.location=null`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dmsec.errors import ConfigError

METHODS = ("finextract", "baseline")
GUIDANCE_PRESETS = ("zoo", "paper")
EXECUTORS = ("ray", "local")
DEVICES = ("auto", "cpu", "cuda")


def _positive(name: str, value: float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"`{name}` must be > 0; got {value!r}")


@dataclass(frozen=True)
class SourceSettings:
    """Which hub to list and which refs to keep.

    `uri`: a local path or file://, hf://, civitai://, s3://bucket/prefix, or `zoo:small` /
    `zoo:full` for the tiny zoo (built on first use) as a local hub. `since` is an ISO date or
    timestamp (UTC when no zone is given).
    """

    uri: str = "zoo:small"
    kinds: tuple[str, ...] = ("full", "lora")
    base_models: tuple[str, ...] | None = None
    since: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.uri.strip():
            raise ConfigError("`source.uri` must be a non-empty string")
        bad = sorted(set(self.kinds) - {"full", "lora"})
        if not self.kinds or bad:
            raise ConfigError(f"`source.kinds` must be a non-empty subset of [full, lora]; got {list(self.kinds)}")  # fmt: skip
        if self.since is not None:
            try:
                datetime.fromisoformat(self.since.replace("Z", "+00:00"))
            except ValueError:
                raise ConfigError(f"`source.since` must be an ISO date or time; got {self.since!r}") from None  # fmt: skip
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"`source.limit` must be >= 1 or null; got {self.limit}")


@dataclass(frozen=True)
class RegistrySettings:
    """The protected-artwork registry and the embedder/threshold to match with.

    `location` null means `<results.out>/registry`, built from the zoo's protected training images
    when the source is a zoo and no registry is there yet. `threshold` null is the embedder's
    calibrated default (`copy_threshold()` for "zoo", Hamming 31 for "pdq").
    """

    location: str | None = None
    embedder: str = "zoo"
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not self.embedder.strip():
            raise ConfigError("`registry.embedder` must be a non-empty name")


@dataclass(frozen=True)
class PullSettings:
    """Download policy; null sizes keep `dmsec.hub.PullPolicy`'s defaults.

    `bases`: "name=repo_id" entries naming the base model (a repo id in the source) to pull for
    checkpoints whose hub names the base by family, e.g. Civitai's "SD 1.5" or our "sd1"
    (`dmsec.models.family.base_for`).
    """

    cache_dir: str | None = None
    allow_pickle: bool = False
    max_file_bytes: int | None = None
    max_checkpoint_bytes: int | None = None
    bases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from dmsec.models.family import base_for

        try:
            base_for(None, None, self.bases)
        except ValueError as exc:
            raise ConfigError(f"`pull.bases`: {exc}") from None
        _positive("pull.max_file_bytes", self.max_file_bytes, allow_none=True)
        _positive("pull.max_checkpoint_bytes", self.max_checkpoint_bytes, allow_none=True)


@dataclass(frozen=True)
class ExtractSettings:
    """FineXtract per checkpoint.

    `guidance` picks the per-kind (w, k) defaults: "zoo" (`dmsec.zoo.config.ZOO_GUIDANCE`, tuned
    for the 16x16 zoo) or "paper" (Stable Diffusion's); `w`/`k` override both kinds. `top_k`
    candidates (largest groups) are kept per checkpoint, plus every group that matched.
    256 samples x 25 DDIM steps: on the small zoo 128 samples left the light full fine-tune with
    one near-copy at the threshold's edge, 256 gives two clear ones (tests/scan).
    """

    method: str = "finextract"
    guidance: str = "zoo"
    w: float | None = None
    k: float | None = None
    n_samples: int = 256
    steps: int = 25
    seed: int = 0
    n_groups: int | None = None
    top_k: int = 8
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"`extract.method` must be one of {METHODS}; got {self.method!r}")
        if self.guidance not in GUIDANCE_PRESETS:
            raise ConfigError(f"`extract.guidance` must be one of {GUIDANCE_PRESETS}; got {self.guidance!r}")  # fmt: skip
        for name in ("n_samples", "steps", "top_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`extract.{name}` must be >= 1; got {getattr(self, name)}")
        if self.n_groups is not None and self.n_groups < 1:
            raise ConfigError(f"`extract.n_groups` must be >= 1 or null; got {self.n_groups}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"`extract.batch_size` must be >= 1 or null; got {self.batch_size}")

    def guidance_table(self) -> tuple[tuple[str, float, float], ...]:
        """(kind, w, k) per fine-tune kind from the chosen preset."""
        if self.guidance == "zoo":
            from dmsec.zoo.config import ZOO_GUIDANCE as table
        else:
            from dmsec.extract import PAPER_DEFAULTS as table
        return tuple((kind, float(w), float(k)) for kind, (w, k) in sorted(table.items()))


@dataclass(frozen=True)
class MatchSettings:
    """`members`: search every generation of a group, not only its representative (a group's
    representative is not always its copy: measured on lora-9a-light, 128 samples gave 6 groups
    whose representatives matched nothing while 8 members were copies)."""

    members: bool = True
    max_matches_per_checkpoint: int = 100

    def __post_init__(self) -> None:
        if self.max_matches_per_checkpoint < 1:
            raise ConfigError(f"`match.max_matches_per_checkpoint` must be >= 1; got {self.max_matches_per_checkpoint}")  # fmt: skip


@dataclass(frozen=True)
class AuthenticateSettings:
    """CGI-DM on every matched artwork. 200 PGD steps instead of the paper's 1,000 keep a CPU
    scan in minutes (tests/authenticate shows members still score above hold-outs there)."""

    enabled: bool = True
    steps: int = 200
    seed: int = 0
    baseline_draws: int = 32

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"`authenticate.steps` must be >= 1; got {self.steps}")
        if self.baseline_draws < 1:
            raise ConfigError(f"`authenticate.baseline_draws` must be >= 1; got {self.baseline_draws}")  # fmt: skip


@dataclass(frozen=True)
class RunSettings:
    """How the scan runs; none of this changes results (it is not part of the config hash).

    `executor` "ray" runs `pipelines/scan.py` (local Ray when `address` is null and no
    $RAY_ADDRESS is set, as under `ray job submit`; started with `num_cpus` and
    `object_store_mb`), "local" runs the same stages in this process. Actor pools: `*_actors`.
    Per extract/authenticate actor: `gpus_per_actor` (null: the GPUs up when the scan starts,
    shared, else CPU actors; > 0: asked for even before any GPU node is up, so an autoscaler can
    scale from zero), `cpus_per_actor` and `memory_mb` reserved, `torch_threads` used.
    """

    executor: str = "ray"
    address: str | None = None
    num_cpus: int = 2
    object_store_mb: int = 256
    device: str = "auto"
    pull_actors: int = 1
    extract_actors: int = 2
    match_actors: int = 1
    authenticate_actors: int = 1
    gpus_per_actor: float | None = None
    cpus_per_actor: float = 0.6
    memory_mb: int = 2048
    torch_threads: int = 1
    max_warm_bases: int = 2

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"`run.executor` must be one of {EXECUTORS}; got {self.executor!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"`run.device` must be one of {DEVICES}; got {self.device!r}")
        for name in ("num_cpus", "object_store_mb", "pull_actors", "extract_actors",
                     "match_actors", "authenticate_actors", "memory_mb", "torch_threads",
                     "max_warm_bases"):  # fmt: skip
            _positive(f"run.{name}", getattr(self, name))
        _positive("run.cpus_per_actor", self.cpus_per_actor)
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ConfigError(f"`run.gpus_per_actor` must be >= 0 or null; got {self.gpus_per_actor}")  # fmt: skip


@dataclass(frozen=True)
class ResultsSettings:
    """Where findings go: Parquet tables, the ledger, scan records and reports under `out`, a
    local folder or `s3://bucket/prefix` (`dmsec.results.remote`: a local mirror published commit
    by commit). Every `flush_every` finished checkpoints are committed (data first, then the
    ledger). `staging` is where the stages pass generated images to each other (null:
    `<out>/_staging`, or the mirror's for S3); on a multi-node cluster every node must see it at
    the same path (a shared volume)."""

    out: str = "results"
    flush_every: int = 8
    report: bool = True
    keep_staging: bool = False
    staging: str | None = None

    def __post_init__(self) -> None:
        if not self.out.strip():
            raise ConfigError("`results.out` must be a non-empty path")
        if self.flush_every < 1:
            raise ConfigError(f"`results.flush_every` must be >= 1; got {self.flush_every}")
        if self.staging is not None and "://" in self.staging:
            raise ConfigError(f"`results.staging` must be a local (or shared-volume) path; got {self.staging!r}")  # fmt: skip


@dataclass(frozen=True)
class ScanConfig:
    """The whole scan; see the module docstring."""

    source: SourceSettings = field(default_factory=SourceSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    pull: PullSettings = field(default_factory=PullSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    match: MatchSettings = field(default_factory=MatchSettings)
    authenticate: AuthenticateSettings = field(default_factory=AuthenticateSettings)
    run: RunSettings = field(default_factory=RunSettings)
    results: ResultsSettings = field(default_factory=ResultsSettings)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), the inverse of `config_from_dict`."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **sections: dict[str, Any]) -> ScanConfig:
        """A copy with some fields of some sections changed, e.g. `replace(run={"executor": "local"})`."""
        data = self.to_dict()
        for section, values in sections.items():
            if section not in data:
                raise ConfigError(f"unknown scan config section `{section}`")
            data[section].update(values)
        return config_from_dict(data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_from_dict(data: dict[str, Any] | None) -> ScanConfig:
    """Build and validate a `ScanConfig` from nested mappings; unknown keys are errors."""
    return _build(ScanConfig, data or {}, "")


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "scan config"
    if not isinstance(data, dict):
        raise ConfigError(f"`{where}` must be a mapping; got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key `{prefix}{unknown[0]}` (known in `{where}`: {sorted(names)})"
        )
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """Check `value` against the annotation `tp` (a dataclass, scalar, Optional or tuple)."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is None else value, f"{name}.")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, name)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{name}` must be a list; got {value!r}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise ConfigError(f"`{name}` must be {getattr(tp, '__name__', tp)}; got {value!r}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """ "a.b=value" -> (["a", "b"], YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"`--set` expects key=value (e.g. extract.n_samples=64); got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"`--set {key}`: value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key=value` overrides to a nested dict (a copy); unknown keys fail in validation."""
    out = _plain(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"`--set {'.'.join(path)}`: `{part}` is not a section")
            node = child
        node[path[-1]] = value
    return out


def load_scan_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ScanConfig:
    """The config in YAML file `path` (default: the embedded default), then `overrides`."""
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the scan config must be a mapping of sections")
        data = loaded or {}
    return config_from_dict(apply_overrides(data, list(overrides or [])))


def config_to_yaml(config: ScanConfig | dict[str, Any]) -> str:
    """YAML text of a config (or of a resolved config dict)."""
    data = config.to_dict() if isinstance(config, ScanConfig) else config
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
