"""Resolving a scan config into what runs: the source, the registry, the config hash, the stages.

`resolve_scan(config)` turns `zoo:small` into the built zoo's folder (training it on first use),
opens the registry (creating `<out>/registry` from the zoo's protected training images when the
source is a zoo and no registry location is given), chooses the registry embedder that fits the
images it holds unless `registry.embedder` names one (`choose_registry_embedder`, said once),
fixes the match threshold, and hashes the settings that change a checkpoint's findings (pull
policy, extract, methods, match, authenticate, registry with the embedder as chosen, schema
version). That hash keys the ledger: changing any of those rescans everything; changing where or
how the scan runs (`run`, `results`, `source`) does not. `stage_kwargs` hands each stage its part
of the config: the library's own configs as they are, no copies.

Nothing here depends on the source's name: the clustering space and guidance preset left null in
`extract` are chosen per checkpoint from its model by the extract stage (`ExtractConfig.fitted`),
a deterministic function of the checkpoint, so hashing them as null is exact.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmsec.config import to_mapping
from dmsec.errors import ConfigError
from dmsec.hub import scan_config_hash
from dmsec.results.schema import SCHEMA_VERSION
from dmsec.scan.config import ScanConfig
from dmsec.storage import is_s3

if TYPE_CHECKING:
    from dmsec.match.choice import EmbedderChoice

logger = logging.getLogger(__name__)
ZOO_SCHEME = "zoo:"


@dataclass(frozen=True)
class ResolvedScan:
    """A scan config with its source, registry and threshold resolved."""

    config: ScanConfig
    source_uri: str
    zoo_root: str | None
    registry_location: str
    embedder: str  # the registry embedder matched with: as set, or chosen (`embedder_reason`)
    threshold: float
    config_hash: str
    embedder_reason: str | None = None  # why `embedder` was chosen; None when it was set

    def stage_kwargs(self, stage: str, staging_root: str | Path, device: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Constructor kwargs of stage `stage` ("pull", "extract", "match", "authenticate")."""
        c, run = self.config, self.config.run
        heavy = {"device": device or run.device, "max_warm_bases": run.max_warm_bases,
                 "torch_threads": run.torch_threads}  # fmt: skip
        if stage == "pull":
            return {"source_uri": self.source_uri, "cache_dir": run.cache_dir, "policy": c.pull,
                    "bases": list(c.source.bases)}  # fmt: skip
        if stage == "extract":
            return {"config": c.extract, "extractor": c.methods.extractor,
                    "staging_root": str(staging_root), **heavy}  # fmt: skip
        if stage == "match":
            return {"registry_location": self.registry_location, "embedder": self.embedder,
                    "threshold": self.threshold, "settings": c.match}  # fmt: skip
        if stage == "authenticate":
            return {"config": c.authenticate, "verifier": c.methods.verifier, **heavy}
        raise ConfigError(f"`stage` must be pull, extract, match or authenticate; got {stage!r}")

    def resolved_dict(self) -> dict[str, Any]:
        """The config as run: every null default filled in (written beside the results)."""
        data = self.config.to_dict()
        data["source"]["uri_resolved"] = self.source_uri
        data["registry"]["location_resolved"] = self.registry_location
        data["registry"]["embedder_resolved"] = self.embedder
        data["registry"]["embedder_reason"] = self.embedder_reason
        data["registry"]["threshold_resolved"] = self.threshold
        data["config_hash"] = self.config_hash
        return data

    def seeds(self) -> dict[str, Any]:
        """Every seed the scan's results depend on, with what each one drives."""
        extract = self.config.extract
        return {
            "extract.seed": extract.seed,
            "extract.generation_seeds": f"generation i starts from generation_seed({extract.seed}, i) = {extract.seed} + i, i < {extract.n_samples}",
            "clustering.seed": 0,
            "authenticate.seed": self.config.authenticate.seed,
        }  # fmt: skip


def resolve_source(uri: str, echo: Callable[[str], None] | None = None) -> tuple[str, str | None]:
    """(source URI, zoo root or None): `zoo:<preset>` is the built zoo as a local folder
    (`zoo:small`, `zoo:full`: the digit zoo; `zoo:art`, `zoo:art-small`: the art zoo). A zoo is
    trained on first use: progress bars on a terminal, else one line before and one after."""
    if not uri.startswith(ZOO_SCHEME):
        return uri, None
    from dmsec.zoo.art_config import ART_PRESETS
    from dmsec.zoo.build import build_zoo

    preset = uri[len(ZOO_SCHEME) :]
    bars = sys.stderr.isatty()
    started = time.perf_counter()
    if preset in ART_PRESETS:
        from dmsec.zoo.art_build import build_art_zoo

        zoo = build_art_zoo(preset, progress=bars)  # trains on first use (an hour on 2 cores)
    else:
        zoo = build_zoo(preset, progress=bars)  # trains on first use (minutes)
    took = time.perf_counter() - started
    if echo is not None and took > 5:  # it was trained now, not read from the cache
        echo(f"zoo {preset}: trained in {took:.0f} s, cached at {zoo.root}")
    return str(zoo.root), str(zoo.root)


def zoo_embedder(zoo_root: str | Path) -> str:
    """The embedder (and similarity space) a zoo's images are compared in: art for colour."""
    from dmsec.zoo.build import Zoo

    return "zoo" if Zoo(zoo_root).grey else "art"


def build_zoo_registry(zoo_root: str | Path, location: str | Path) -> Any:
    """A registry holding the zoo's protected training images (embedder "zoo", or "art" for the
    colour art zoo).

    One owner per protected fine-tuning set ("owner of <set>"), titles "<set>/train_NN", and
    `source_uri` the image's absolute path. Returns the `ProtectedArtworkIndex`.
    """
    from dmsec.match import ProtectedArtworkIndex
    from dmsec.zoo.build import Zoo

    zoo = Zoo(zoo_root)
    registry = ProtectedArtworkIndex.create(location, embedders=[zoo_embedder(zoo_root)])
    done: set[str] = set()
    for entry in zoo.select(protected=True):
        if entry.set is None or entry.set in done:
            continue
        done.add(entry.set)
        paths = [str((zoo.root / p).resolve()) for p in entry.train_images]
        titles = [f"{entry.set}/{Path(p).stem}" for p in paths]
        report = registry.add(paths, owner=f"owner of {entry.set}", title=titles, source_uri=paths)
        if report.errors:
            raise ConfigError(f"zoo registry: could not add {report.errors[0].source}: {report.errors[0].reason}")  # fmt: skip
    return registry


def default_registry_location(out: str) -> str:
    """`<results.out>/registry`, for a folder or an s3:// location."""
    return f"{out.rstrip('/')}/registry" if is_s3(out) else str(Path(out).expanduser() / "registry")


def registry_embedder(registry: Any) -> EmbedderChoice:
    """The embedder of `registry` (a `ProtectedArtworkIndex`) that fits the images it holds:
    sizes from its table, grey or colour from its `art` codes where it has them."""
    from dmsec.match.choice import choose_registry_embedder, grey_art_codes
    from dmsec.match.codes import codes_from_arrow

    names = registry.embedder_names
    if len(names) == 1:  # nothing to choose between: its table need not be read
        return choose_registry_embedder(names, [], None)
    table = registry.artworks(include_codes="art" in names)
    sizes = list(zip(table["width"].to_pylist(), table["height"].to_pylist(), strict=True))
    grey = None
    if "art" in names and table.num_rows:
        grey = grey_art_codes(codes_from_arrow(registry.embedder("art"), table["art"])).tolist()
    return choose_registry_embedder(names, sizes, grey)


def resolve_registry(config: ScanConfig, zoo_root: str | None) -> tuple[str, str, str | None, float]:  # fmt: skip
    """(registry location, embedder, why it was chosen or None when set, match threshold); builds
    the zoo registry when that is the default."""
    from dmsec.match import ProtectedArtworkIndex
    from dmsec.match.choice import EmbedderChoiceError

    location = config.registry.location or default_registry_location(config.results.out)
    if not ProtectedArtworkIndex.exists(location):
        if config.registry.location is None and zoo_root is not None:
            logger.info("building the zoo's protected-artwork registry at %s", location)
            build_zoo_registry(zoo_root, location)
        else:
            raise ConfigError(f"`registry.location`: no registry at {location}; build one with `dmsec index add`")  # fmt: skip
    registry = ProtectedArtworkIndex.open(location)
    name, reason = config.registry.embedder, None
    if name is None:
        try:
            choice = registry_embedder(registry)
        except EmbedderChoiceError as exc:
            raise ConfigError(f"`registry.embedder`: {exc}; set it to one of {list(exc.candidates)}") from None  # fmt: skip
        name, reason = choice.names[0], choice.reason
    embedder = registry.embedder(name)
    return location, name, reason, float(embedder.validate_threshold(config.registry.threshold))


def resolve_scan(config: ScanConfig, echo: Callable[[str], None] | None = None) -> ResolvedScan:
    """Resolve `config` (see the module docstring); `echo` gets a line if a zoo is trained and
    one saying which registry embedder was chosen and why."""
    source_uri, zoo_root = resolve_source(config.source.uri, echo)
    location, embedder, reason, threshold = resolve_registry(config, zoo_root)
    if reason is not None and echo is not None:
        echo(f"registry embedder {embedder}: {reason} (registry.embedder overrides)")
    hashed = {
        "schema_version": SCHEMA_VERSION,
        "pull": to_mapping(config.pull),
        "extract": to_mapping(config.extract),
        "methods": to_mapping(config.methods),
        "match": to_mapping(config.match),
        "authenticate": to_mapping(config.authenticate),
        "registry": {
            "location": config.registry.location,
            "embedder": embedder,
            "threshold": threshold,
        },  # fmt: skip
    }
    return ResolvedScan(config, source_uri, zoo_root, location, embedder, threshold,
                        scan_config_hash(hashed), reason)  # fmt: skip
