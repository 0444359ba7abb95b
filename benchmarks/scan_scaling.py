"""Scan throughput on the tiny zoo: checkpoints per minute with 1 vs 2 CPU actors.

    python benchmarks/scan_scaling.py            # default FineXtract settings, zoo fine-tunes x2
    python benchmarks/scan_scaling.py --quick    # 128 generations, x2 (<= 5 min)
    python benchmarks/scan_scaling.py --authenticate   # CGI-DM on too (both heavy pools scale)

The hub is the small zoo's fine-tunes copied `--copies` times (distinct checkpoints); each run
scans all of them into a fresh results folder (own ledger) through the Ray executor on one
local Ray (2 CPUs, started once, so Ray's start-up is not timed). Each heavy actor runs 1 torch
thread, so N actors can use N cores. By default CGI-DM is off and only the extract pool changes
(1 or 2 actors): 1 actor = 1 core, 2 = 2 cores. With `--authenticate`, extract and authenticate
get 1 or 2 actors each; note that 1 + 1 actors already fill 2 cores when the stages overlap.
Printed: wall time and checkpoints per minute end to end (including Ray starting the actors,
which import torch and load models: tens of seconds on a busy machine), the steady rate between
the first and the last finished checkpoint, the workers' seconds per stage and their share,
workers' seconds / wall (cores kept busy), and last `scaling 2_vs_1_actors=<ratio>`: the ratio
of end-to-end checkpoints per minute. CPUs usable and load average are printed: on a shared
machine the ratio drops with load.
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
from dmsec.scan.records import STAGES  # noqa: E402
from dmsec.zoo.build import build_zoo  # noqa: E402


def make_hub(root: Path, copies: int) -> tuple[Path, int]:
    """The small zoo's base plus `copies` copies of every fine-tune; (hub, checkpoints)."""
    zoo = build_zoo("small", progress=False)
    shutil.copytree(zoo.root / "base", root / "base")
    for c in range(copies):
        for e in zoo.fine_tunes:
            shutil.copytree(zoo.root / e.path, root / f"{e.name}-copy{c}")
    build_zoo_registry(zoo.root, root.parent / "registry")
    return root, copies * len(zoo.fine_tunes)


def run(hub: Path, work: Path, actors: int, quick: bool, cgidm: bool) -> tuple[float, int, dict[str, float], float]:  # fmt: skip
    """One scan with `actors` per scaled pool: (wall s, checkpoints, worker s per stage, steady
    checkpoints per minute between the first and last finished checkpoint)."""
    extract = {"n_samples": 128} if quick else {}
    auth_steps = {"steps": 50} if quick else {}
    config = config_from_dict(
        {
            "source": {"uri": str(hub)},
            "registry": {"location": str(work / "registry")},
            "extract": extract,
            "authenticate": auth_steps,
            "methods": {"verifier": "cgi-dm" if cgidm else None},
            "run": {
                "executor": "ray",
                "cache_dir": str(work / "cache"),
                "extract_actors": actors,
                "authenticate_actors": actors if cgidm else 1,
                "cpus_per_actor": 0.45,
            },
            "results": {"out": str(work / f"results-{actors}"), "report": False},
        }
    )
    finished: list[float] = []

    def echo(line: str) -> None:
        if line.startswith("["):
            finished.append(time.perf_counter())
        print("   ", line, flush=True)

    started = time.perf_counter()
    summary = run_scan(config, echo=echo)
    wall = time.perf_counter() - started
    span = finished[-1] - finished[0] if len(finished) > 1 else float("nan")
    steady = (len(finished) - 1) / span * 60 if span > 0 else float("nan")
    errors = [c for c in summary.checkpoints if c["status"] != "ok"]
    if errors:
        raise SystemExit(f"scan errors: {errors}")
    return wall, len(summary.checkpoints), summary.stage_seconds(), steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128 generations (50 CGI-DM steps)")  # fmt: skip
    parser.add_argument("--authenticate", action="store_true", help="CGI-DM on; its pool scales too")  # fmt: skip
    parser.add_argument("--copies", type=int, default=None, help="copies of each fine-tune (default 2)")  # fmt: skip
    args = parser.parse_args()
    copies = args.copies or 2

    import ray

    cpus = len(os.sched_getaffinity(0))
    print(f"CPUs usable: {cpus}; load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="dmsec-scan-scaling-"))
    try:
        hub, n = make_hub(work / "hub", copies)
        print(f"hub: {n} checkpoints ({copies} copies of the small zoo's fine-tunes); quick={args.quick}, CGI-DM={'on' if args.authenticate else 'off'}")  # fmt: skip
        ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False)
        results = {}
        for actors in (1, 2):
            pools = "extract and authenticate" if args.authenticate else "extract"
            print(f"-- {actors} actor(s) for {pools}", flush=True)
            results[actors] = run(hub, work, actors, args.quick, args.authenticate)
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'actors':<8}{'checkpoints':>12}{'wall s':>9}{'ckpt/min':>10}{'steady':>8}{'busy':>6}  " + "".join(f"{s + ' s':>16}" for s in STAGES))  # fmt: skip
    for actors, (wall, count, stages, steady) in results.items():
        total = sum(stages.values()) or 1.0
        split = "".join(f"{stages[s]:>8.1f} ({stages[s] / total:>4.0%})" for s in STAGES)
        print(f"{actors:<8}{count:>12}{wall:>9.1f}{count / wall * 60:>10.2f}{steady:>8.2f}{total / wall:>6.2f}  {split}")  # fmt: skip
    print(
        "(steady: checkpoints/min from the first to the last finished checkpoint; stage s: workers'"
    )
    print(" wall time summed over checkpoints; busy: their sum / wall)")
    print(f"steady-state ratio 2 vs 1: {results[2][3] / results[1][3]:.2f}")
    one, two = (results[a][1] / results[a][0] for a in (1, 2))
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"scaling 2_vs_1_actors={two / one:.2f}")


if __name__ == "__main__":
    main()
