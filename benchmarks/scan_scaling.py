"""Scan throughput on the tiny zoo: checkpoints per minute with 1 vs 2 CPU actors per heavy stage.

    python benchmarks/scan_scaling.py            # default scan settings, the zoo's fine-tunes x2
    python benchmarks/scan_scaling.py --quick    # 64 generations, 50 CGI-DM steps, x1 (<= 5 min)

The hub is the small zoo's fine-tunes copied `--copies` times (distinct checkpoints); each run
scans all of them into a fresh results folder (own ledger) through `pipelines/scan.py` on one
local Ray (2 CPUs, started once, so Ray's start-up is not timed). The heavy pools, extract and
authenticate, get 1 or 2 actors each (1 torch thread and 0.45 CPU reserved per actor, so both
settings fit 2 CPUs); pull and match keep one light actor each. Printed:
wall time of each run, checkpoints per minute, the workers' time per stage and its share, and
last `scaling 2_vs_1_actors=<ratio>` (ratio of checkpoints per minute). The CPUs this process
may use and the load average are printed too: on a shared machine the ratio drops with load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from dmsec.scan import build_zoo_registry, config_from_dict, run_scan  # noqa: E402
from dmsec.scan.executors import ray_executor as load_ray_executor  # noqa: E402
from dmsec.scan.records import STAGES  # noqa: E402
from dmsec.zoo.build import build_zoo  # noqa: E402

ray_executor = load_ray_executor()  # pipelines/scan.py


def make_hub(root: Path, copies: int) -> tuple[Path, int]:
    """The small zoo's base plus `copies` copies of every fine-tune; (hub, checkpoints)."""
    zoo = build_zoo("small", progress=False)
    shutil.copytree(zoo.root / "base", root / "base")
    for c in range(copies):
        for e in zoo.fine_tunes:
            shutil.copytree(zoo.root / e.path, root / f"{e.name}-copy{c}")
    build_zoo_registry(zoo.root, root.parent / "registry")
    return root, copies * len(zoo.fine_tunes)


def run(hub: Path, work: Path, actors: int, quick: bool) -> tuple[float, int, dict[str, float]]:
    """One scan with `actors` actors per heavy pool: (wall s, checkpoints, worker s per stage)."""
    extract = {"n_samples": 64} if quick else {}
    config = config_from_dict(
        {
            "source": {"uri": str(hub)},
            "registry": {"location": str(work / "registry")},
            "pull": {"cache_dir": str(work / "cache")},
            "extract": extract,
            "authenticate": {"steps": 50} if quick else {},
            "run": {
                "extract_actors": actors,
                "authenticate_actors": actors,
                "cpus_per_actor": 0.45,
            },
            "results": {"out": str(work / f"results-{actors}"), "report": False},
        }
    )
    started = time.perf_counter()
    summary = run_scan(config, ray_executor, echo=lambda line: print("   ", line, flush=True))
    wall = time.perf_counter() - started
    errors = [c for c in summary.checkpoints if c["status"] != "ok"]
    if errors:
        raise SystemExit(f"scan errors: {errors}")
    return wall, len(summary.checkpoints), summary.stage_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 generations, 50 CGI-DM steps, 1 copy")  # fmt: skip
    parser.add_argument("--copies", type=int, default=None, help="copies of each fine-tune (default 2, quick 1)")  # fmt: skip
    args = parser.parse_args()
    copies = args.copies or (1 if args.quick else 2)

    import ray

    cpus = len(os.sched_getaffinity(0))
    print(f"CPUs usable: {cpus}; load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="dmsec-scan-scaling-"))
    try:
        hub, n = make_hub(work / "hub", copies)
        print(f"hub: {n} checkpoints ({copies} copies of the small zoo's fine-tunes); quick={args.quick}")  # fmt: skip
        ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False)
        results = {}
        for actors in (1, 2):
            print(f"-- {actors} actor(s) per heavy stage", flush=True)
            results[actors] = run(hub, work, actors, args.quick)
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'heavy actors':<16}{'checkpoints':>12}{'wall s':>9}{'ckpt/min':>10}  " + "".join(f"{s + ' s':>16}" for s in STAGES))  # fmt: skip
    for actors, (wall, count, stages) in results.items():
        total = sum(stages.values()) or 1.0
        split = "".join(f"{stages[s]:>8.1f} ({stages[s] / total:>4.0%})" for s in STAGES)
        print(f"{actors:<16}{count:>12}{wall:>9.1f}{count / wall * 60:>10.2f}  {split}")
    print("(stage seconds: workers' time summed over checkpoints, not wall time)")
    one, two = (results[a][1] / results[a][0] for a in (1, 2))
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"scaling 2_vs_1_actors={two / one:.2f}")


if __name__ == "__main__":
    main()
