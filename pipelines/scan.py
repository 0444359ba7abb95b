"""The scan as a Ray Data job: dmsec's stages wired as actor pools (the only Ray code of the scan).

    dmsec scan [--config configs/scan.yaml] [--set key=value ...]     # run.executor: ray
    python -m dmsec_pipelines.scan [--config ...] [--set ...]         # the same, without the CLI

Installed with dmsec as `dmsec_pipelines.scan`; `dmsec scan` finds `ray_executor` through the
Ray job table (`dmsec.jobs`, `dmsec.scan.executors`).

items (one per pending checkpoint, JSON; file paths only, no pixels)
  -> map_batches(PullStage)          light actors: download checkpoint + base into the cache
  -> map_batches(ExtractStage)       heavy actors (GPU each when the cluster has GPUs, else CPU):
                                     warm base models, FineXtract, generations to PNG files
  -> map_batches(MatchStage)         light actors: registry search of every generation
  -> map_batches(AuthenticateStage)  heavy actors: CGI-DM per matched artwork
  -> the driver (`dmsec.scan.runner`) commits Parquet parts, then the ledger

Every stage runs `metered`: per-stage checkpoint counts by status, seconds and findings as
`ray.util.metrics` counters in the actors, so a Ray cluster's Prometheus endpoint (each node's
metrics agent; Ray prefixes the names with `ray_`) shows them next to Ray's own:
  ray_dmsec_scan_checkpoints_total{stage, status}  checkpoints a stage handled, by the status they
                                                   left it with (ok, skipped, error)
  ray_dmsec_scan_stage_seconds_total{stage}        seconds the stage spent on them
  ray_dmsec_scan_findings_total{stage="match"}     matches (group x protected artwork) found
Items a stage passes through untouched (ended earlier) are not counted again.
Pool sizes, CPU/GPU/memory reservations and threads come from the config's `run` section. Heavy
pools take one checkpoint at a time per actor, so a slow checkpoint does not hold others back.
Staging files are passed by path: on a multi-node cluster `results.staging` must be a folder every
node mounts (a shared volume; known limit: no object-store staging yet). Under `ray job submit`
the job joins the submitting cluster through $RAY_ADDRESS; `cluster/README.md` says how.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray

from dmsec.errors import ConfigError
from dmsec.scan.records import ScanItem
from dmsec.scan.resolve import ResolvedScan
from dmsec.scan.stages import STAGE_CLASSES
from dmsec.scan.stages.base import Stage

logger = logging.getLogger(__name__)
LIGHT_CPUS = 0.1  # pull and match actors mostly wait on I/O or do milliseconds of work
LIGHT_MEMORY = (
    640 * 2**20
)  # a match actor (torch, FAISS, the registry) peaks at ~420 MiB; Ray asks 1.25x


#: Ray's lines kept out of the user's log unless -v, each with why it is harmless here:
#: - Ray Data (2.60) hands every actor-pool worker `ray.put` refs of its own map transformer and
#:   DataContext as constructor arguments, and its pools restart actors (max_restarts -1), so Ray
#:   core logs "... has constructor arguments in the object store and max_restarts > 0" once per
#:   scan, whatever the UDF's arguments (reproduced with a one-line UDF and 10 bytes of kwargs;
#:   upstream: ray-project/ray#57733, #53727). Our stage kwargs are small configs (a few kB). The
#:   warned-of failure needs those refs lost while the driver that owns them lives; the driver
#:   holds them for the whole dataset, and if it dies the scan dies with it (committed parts stay).
RAY_NOISE = ("has constructor arguments in the object store and max_restarts > 0",)


def verbose() -> bool:
    """Whether the user asked for more log output (`dmsec -v`: the root logger at INFO)."""
    return logging.getLogger().getEffectiveLevel() <= logging.INFO


@contextlib.contextmanager
def _without_ray_noise(noise: tuple[str, ...] = RAY_NOISE) -> Iterator[None]:
    """Pass this process's stderr (fd 2, where Ray core's C++ logger writes) through a filter
    that drops the lines `noise` names; a no-op with -v or where fd 2 cannot be replaced."""
    if verbose() or not noise:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:
        yield
        return

    def pump() -> None:
        with os.fdopen(read_end, "rb") as lines, os.fdopen(os.dup(saved), "wb", buffering=0) as out:  # fmt: skip
            for line in lines:
                if not any(n.encode() in line for n in noise):
                    out.write(line)

    thread = threading.Thread(target=pump, name="dmsec-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump drains and stops
        os.close(saved)
        thread.join(timeout=5)


def _init_ray(resolved: ResolvedScan) -> bool:
    """Connect to `run.address` (or $RAY_ADDRESS) or start a local Ray; True when this call
    started or joined it (and so shuts it down). Without -v, Ray's own INFO lines and the
    workers' output stay in Ray's log files (`/tmp/ray/session_latest/logs`), not the user's log:
    a checkpoint's failure is reported by the driver's line for it."""
    if ray.is_initialized():
        return False
    run = resolved.config.run
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    quiet = {"log_to_driver": verbose(), "logging_level": logging.INFO if verbose() else logging.WARNING}  # fmt: skip
    # under `ray job submit` the job server sets RAY_ADDRESS: join that cluster unchanged
    address = run.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, include_dashboard=False, **quiet)
    else:
        ray.init(num_cpus=run.num_cpus, object_store_memory=run.object_store_mb * 2**20,
                 include_dashboard=False, **quiet)  # fmt: skip
    return True


def _quiet_ray_data() -> None:
    """The driver prints one line per finished checkpoint; Ray Data's own progress logs (a block
    every few seconds when stdout is not a terminal) would bury them, and its notices (progress
    bars disabled, the execution plan) are for -v."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING if verbose() else logging.ERROR)


def heavy_resources(resolved: ResolvedScan) -> tuple[dict[str, Any], str]:
    """(Ray resources per extract/authenticate actor, device) for this cluster and config."""
    run = resolved.config.run
    gpus = float(ray.cluster_resources().get("GPU", 0))
    heavy_actors = run.extract_actors + run.authenticate_actors
    if run.device != "cpu" and run.gpus_per_actor:
        # explicit: ask for it even when no GPU node is up yet (an autoscaler scales from zero)
        return {"num_gpus": run.gpus_per_actor, "num_cpus": run.cpus_per_actor}, "cuda"
    if gpus > 0 and run.device != "cpu" and run.gpus_per_actor != 0:
        share = min(1.0, gpus / heavy_actors)
        return {"num_gpus": share, "num_cpus": run.cpus_per_actor}, "cuda"
    if run.device == "cuda":
        raise ConfigError("`run.device` is cuda but the Ray cluster has no GPUs")
    cpus = float(ray.cluster_resources().get("CPU", 0))
    wanted = heavy_actors * run.cpus_per_actor + (run.pull_actors + run.match_actors) * LIGHT_CPUS
    if wanted > cpus + 1e-6:
        raise ConfigError(
            f"the actor pools reserve {wanted:.2f} CPUs but the cluster has {cpus:g}: lower "
            "`run.extract_actors`, `run.authenticate_actors` or `run.cpus_per_actor`"
        )
    return {"num_cpus": run.cpus_per_actor}, "cpu"


# -- metrics ----------------------------------------------------------------------------------
CHECKPOINTS = "dmsec_scan_checkpoints_total"
SECONDS = "dmsec_scan_stage_seconds_total"
FINDINGS = "dmsec_scan_findings_total"


class StageMetrics:
    """The counters of one stage, made in the process (actor) that runs it."""

    def __init__(self, stage: str) -> None:
        from ray.util.metrics import Counter

        self.stage = stage
        self.checkpoints = Counter(CHECKPOINTS, description="checkpoints a scan stage handled, by the status they left it with", tag_keys=("stage", "status"))  # fmt: skip
        self.seconds = Counter(SECONDS, description="seconds a scan stage spent on checkpoints", tag_keys=("stage",))  # fmt: skip
        self.findings = Counter(FINDINGS, description="matches (group x protected artwork) found", tag_keys=("stage",))  # fmt: skip

    def record(self, items: list[ScanItem], handled: set[int]) -> None:
        """Count the items (by position) this stage handled."""
        tags = {"stage": self.stage}
        for i in handled:
            item = items[i]
            status = "ok" if item.pending else item.status
            self.checkpoints.inc(1, tags={**tags, "status": status})
            self.seconds.inc(float(item.timings.get(self.stage, 0.0)), tags=tags)
            if self.stage == "match" and item.matches:
                self.findings.inc(len(item.matches), tags=tags)


def metered(stage_cls: type[Stage]) -> type[Stage]:
    """`stage_cls` with its batches counted in `StageMetrics` (see the module docstring)."""

    def run(self: Any, items: list[ScanItem]) -> list[ScanItem]:
        if not hasattr(self, "_metrics"):
            self._metrics = StageMetrics(stage_cls.name)
        handled = {i for i, it in enumerate(items) if it.pending}
        out = stage_cls.run(self, items)
        self._metrics.record(items, handled)
        return out

    return type(f"Metered{stage_cls.__name__}", (stage_cls,), {"run": run, "__module__": __name__})


def ray_executor(items: list[ScanItem], resolved: ResolvedScan, staging: Path) -> Iterator[ScanItem]:  # fmt: skip
    """Run `items` through the stages on Ray Data; yield each finished item (any order)."""
    with _without_ray_noise():
        yield from _run_stages(items, resolved, staging)


def _run_stages(items: list[ScanItem], resolved: ResolvedScan, staging: Path) -> Iterator[ScanItem]:  # fmt: skip
    started_here = _init_ray(resolved)
    _quiet_ray_data()
    try:
        run = resolved.config.run
        heavy, device = heavy_resources(resolved)
        ds = ray.data.from_items([{"item": it.to_json()} for it in items], override_num_blocks=len(items))  # fmt: skip
        light = {"num_cpus": LIGHT_CPUS, "memory": LIGHT_MEMORY}
        heavy_pool = {"memory": run.memory_mb * 2**20, **heavy}
        one_at_a_time = {"max_tasks_in_flight_per_actor": 1}
        pools = {  # stage -> (Ray resources per actor, actor pool)
            "pull": (light, {"size": run.pull_actors}),
            "extract": (heavy_pool, {"size": run.extract_actors, **one_at_a_time}),
            "match": (light, {"size": run.match_actors}),
            "authenticate": (heavy_pool, {"size": run.authenticate_actors, **one_at_a_time}),
        }
        for name, stage in STAGE_CLASSES.items():
            resources, pool = pools[name]
            ds = ds.map_batches(metered(stage), batch_size=1, **resources,
                                fn_constructor_kwargs=resolved.stage_kwargs(name, staging, device),
                                compute=ray.data.ActorPoolStrategy(**pool))  # fmt: skip
        for row in ds.iter_rows():
            yield ScanItem.from_json(row["item"])
    finally:
        if started_here:
            ray.shutdown()


def main(argv: list[str] | None = None) -> None:
    """`python -m dmsec_pipelines.scan [--config FILE] [--set key=value ...]`."""
    import argparse

    from dmsec.scan.config import load_scan_config
    from dmsec.scan.runner import run_scan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="scan config YAML (default: embedded)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    config = load_scan_config(args.config, args.overrides)
    summary = run_scan(config, ray_executor)
    print()
    print(summary.table())


if __name__ == "__main__":
    main()
