"""The scan's configuration: one frozen dataclass per section, loaded from YAML with overrides.

    config = load_scan_config("configs/scan.yaml", ["extract.n_samples=64", "run.extract_actors=1"])

Three sections are the library's own configs, handed to the stages as they are: `pull`
(`dmsec.hub.PullPolicy`), `extract` (`dmsec.extract.ExtractConfig`) and `authenticate`
(`dmsec.authenticate.CgiDmConfig`). The scan owns the rest: `source` (which hub, which refs),
`registry` (what to match against), `methods` (the extractor and verifier, by name), `match`,
`run` (executor, Ray resources, devices, the download cache) and `results` (where and how
findings are written). Loading is `dmsec.config`'s (unknown keys are errors naming the dotted
key; values are type-checked; each section validates itself). The defaults below *are* the
embedded default scan (the tiny zoo as a local hub), and `configs/scan.yaml` spells them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dmsec.authenticate.inversion import CgiDmConfig
from dmsec.config import from_mapping, load_config, to_mapping
from dmsec.errors import ConfigError
from dmsec.extract import ExtractConfig
from dmsec.hub.pull_policy import PullPolicy

DEVICES = ("auto", "cpu", "cuda")
EXECUTORS = ("ray", "local")  # dmsec.scan.executors

#: FineXtract in a scan: 256 samples x 25 DDIM steps (on the small zoo 128 samples left the light
#: full fine-tune with one near-copy at the threshold's edge, 256 gives two clear ones, tests/scan),
#: the clustering space and guidance preset that fit each checkpoint's images (null: chosen from
#: its model by `dmsec.extract.base.image_settings`, as `dmsec extract` chooses), every group kept
#: (`match.top_k` picks the candidates)
SCAN_EXTRACT = ExtractConfig(n_samples=256, steps=25, similarity=None, defaults=None)
#: CGI-DM in a scan: 200 PGD steps instead of the paper's 1,000 keep a CPU scan in minutes
#: (tests/authenticate shows members still score above hold-outs there)
SCAN_AUTHENTICATE = CgiDmConfig(steps=200, baseline_draws=32)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"`{name}` must be > 0; got {value!r}")


@dataclass(frozen=True)
class SourceSettings:
    """Which hub to list and which refs to keep.

    `uri`: a local path or file://, hf://, civitai://, s3://bucket/prefix, or `zoo:small` /
    `zoo:full` for the tiny zoo (built on first use) as a local hub. `since` is an ISO date or
    timestamp (UTC when no zone is given). `bases`: the base registry, "name=location" entries
    (`dmsec.hub.bases`): the hub's name for a base (Civitai's "SD 1.5", a README's
    `base_model`), our family name ("sd1") or "*" -> `hf://org/name@revision`, `s3://bucket/key`,
    an absolute local path (folder or single file), or a repo id in the scan's source. `target`: one repo id in
    `uri`'s source to scan alone instead of a listing, at `revision` (null: its newest);
    `dmsec scan TARGET` sets both from a target URI (`dmsec.hub.target`).
    """

    uri: str = "zoo:small"
    kinds: tuple[str, ...] = ("full", "lora")
    base_models: tuple[str, ...] | None = None
    since: str | None = None
    limit: int | None = None
    bases: tuple[str, ...] = ()
    target: str | None = None
    revision: str | None = None

    def __post_init__(self) -> None:
        if not self.uri.strip():
            raise ConfigError("`source.uri` must be a non-empty string")
        if self.target is not None and not self.target.strip():
            raise ConfigError("`source.target` must be a repo id or null")
        if self.revision is not None and (self.target is None or not self.revision.strip()):
            raise ConfigError(f"`source.revision` needs a `source.target` and a non-empty value; got {self.revision!r}")  # fmt: skip
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
        from dmsec.hub.bases import parse_bases

        try:
            parse_bases(self.bases)
        except ConfigError as exc:
            raise ConfigError(f"`source.bases`: {exc}") from None


@dataclass(frozen=True)
class RegistrySettings:
    """The protected-artwork registry and the embedder/threshold to match with.

    `location` null means `<results.out>/registry`, built from the zoo's protected training images
    when the source is a zoo and no registry is there yet. `embedder` null is the registry's
    embedder that fits the images it holds (`dmsec.match.choice.choose_registry_embedder`).
    `threshold` null is the embedder's calibrated default (`copy_threshold()` for "zoo", Hamming
    31 for "pdq").
    """

    location: str | None = None
    embedder: str | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.embedder is not None and not self.embedder.strip():
            raise ConfigError("`registry.embedder` must be a non-empty name")


@dataclass(frozen=True)
class MethodSettings:
    """Which method each stage runs, by registry name: `extractor` one of
    `dmsec.extract.EXTRACTORS` (finextract; baseline: direct sampling, for comparison), `verifier`
    one of `dmsec.authenticate.VERIFIERS` (cgi-dm; loss-gap) or null (matches not authenticated)."""

    extractor: str = "finextract"
    verifier: str | None = "cgi-dm"

    def __post_init__(self) -> None:
        from dmsec.authenticate.verifier import VERIFIERS
        from dmsec.extract import EXTRACTORS

        if self.extractor not in EXTRACTORS.names():
            raise ConfigError(f"`methods.extractor` must be one of {EXTRACTORS.names()}; got {self.extractor!r}")  # fmt: skip
        if self.verifier is not None and self.verifier not in VERIFIERS.names():
            raise ConfigError(f"`methods.verifier` must be one of {VERIFIERS.names()} or null; got {self.verifier!r}")  # fmt: skip


@dataclass(frozen=True)
class MatchSettings:
    """`top_k`: candidates kept per checkpoint (the largest groups), plus every group that
    matched. `members`: search every generation of a group, not only its representative (a
    group's representative is not always its copy: measured on lora-9a-light, 128 samples gave 6
    groups whose representatives matched nothing while 8 members were copies)."""

    members: bool = True
    top_k: int = 8
    max_matches_per_checkpoint: int = 100

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"`match.top_k` must be >= 1; got {self.top_k}")
        if self.max_matches_per_checkpoint < 1:
            raise ConfigError(f"`match.max_matches_per_checkpoint` must be >= 1; got {self.max_matches_per_checkpoint}")  # fmt: skip


@dataclass(frozen=True)
class RunSettings:
    """How the scan runs; none of this changes results (it is not part of the config hash).

    `executor` "ray" runs `pipelines/scan.py` (local Ray when `address` is null and no
    $RAY_ADDRESS is set, as under `ray job submit`; started with `num_cpus` and
    `object_store_mb`), "local" runs the same stages in this process. Actor pools: `*_actors`.
    `cache_dir`: where pulled checkpoints are kept (null: $DMSEC_HUB_CACHE or
    ~/.cache/dmsec/hub; on a multi-node cluster a path every node mounts).
    Per extract/authenticate actor: `gpus_per_actor` (null: the GPUs up when the scan starts,
    shared, else CPU actors; > 0: asked for even before any GPU node is up, so an autoscaler can
    scale from zero), `cpus_per_actor` and `memory_mb` reserved, `torch_threads` used.
    """

    executor: str = "ray"
    address: str | None = None
    cache_dir: str | None = None
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
    pull: PullPolicy = field(default_factory=PullPolicy)
    extract: ExtractConfig = SCAN_EXTRACT
    methods: MethodSettings = field(default_factory=MethodSettings)
    match: MatchSettings = field(default_factory=MatchSettings)
    authenticate: CgiDmConfig = SCAN_AUTHENTICATE
    run: RunSettings = field(default_factory=RunSettings)
    results: ResultsSettings = field(default_factory=ResultsSettings)

    def __post_init__(self) -> None:
        if self.extract.top_k is not None:
            raise ConfigError("`extract.top_k` must be null in a scan (every group is searched); `match.top_k` sets the candidates kept")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain nested data (tuples as lists), the inverse of `config_from_dict`."""
        data: dict[str, Any] = to_mapping(self)
        return data

    def replace(self, **sections: dict[str, Any]) -> ScanConfig:
        """A copy with some fields of some sections changed, e.g. `replace(run={"executor": "local"})`."""
        unknown = sorted(set(sections) - set(self.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown scan config section `{unknown[0]}`")
        return from_mapping(self, sections)


def config_from_dict(data: dict[str, Any] | None) -> ScanConfig:
    """Build and validate a `ScanConfig` from nested mappings; unknown keys are errors."""
    return from_mapping(ScanConfig, data or {})


def load_scan_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ScanConfig:  # fmt: skip
    """The config in YAML file `path` (default: the embedded default), then `overrides`."""
    return load_config(ScanConfig, path, overrides)
