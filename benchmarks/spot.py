"""SPOT vs the unguided learner (ABIC) vs causal-learn's FCI on synthetic MAGs.

Graphs: Erdos-Renyi DAGs over d observed + d/10 hidden confounders (expected degree 3,
linear-Gaussian, raw scale as in the paper), d in {20, 50, 100}, several seeds each; every method
sees the same data. Reported per size: skeleton F1, arrowhead F1, PAG SHD and wall time (mean and
standard deviation over seeds), side by side, with SPOT's ratios to each baseline. SPOT's time
includes computing the skeleton posterior. Each learner run has a wall-time budget
(`--max-seconds`; a run that hits it stops and returns what it has, and is counted as is).

    python benchmarks/spot.py            # full: 3 seeds per size, n = 2000 (~20 min on 2 cores)
    python benchmarks/spot.py --quick    # 1 seed per size, n = 1000, <= 200 inner steps (~3 min)
    python benchmarks/spot.py --config best_config.yaml   # any SPOT config, e.g. from a tune

The last line is ``skeleton-F1@100 spot=<a> unguided=<b> fci=<c> seconds=<s>`` (means over
seeds; ``seconds`` is SPOT's mean wall time at 100 variables).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import yaml

from dmsec.causal.baselines import fci_pag
from dmsec.causal.metrics import score_graph
from dmsec.causal.posterior import load_posterior
from dmsec.causal.simulate import SimulationConfig, simulate
from dmsec.causal.spot import SPOTConfig, spot, spot_config_from_dict, unguided

METHODS = ("spot", "unguided", "fci")
COLUMNS = (
    ("skeleton_f1", "skeleton F1"),
    ("arrowhead_f1", "arrowhead F1"),
    ("shd", "PAG SHD"),
    ("seconds", "seconds"),
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed per size, n=1000, short budgets")
    p.add_argument("--sizes", default="20,50,100")
    p.add_argument("--seeds", type=int, default=None, help="seeds per size (default 3; 2 at 100)")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=None, help="wall budget per learner run")
    p.add_argument(
        "--config", default=None, help="YAML SPOT config (e.g. best_config.yaml of a tune)"
    )
    p.add_argument("--out", default=None, help="optional JSON file for the per-run rows")
    return p.parse_args()


def run_one(
    method: str, data: np.ndarray, config: SPOTConfig, posterior: object
) -> tuple[np.ndarray, float, bool]:
    t0 = time.perf_counter()
    if method == "fci":
        return fci_pag(data, alpha=0.01), time.perf_counter() - t0, False
    result = spot(data, config, posterior) if method == "spot" else unguided(data, config)  # type: ignore[arg-type]
    return result.pag, result.seconds, bool(result.extra.get("timed_out"))


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    samples = args.samples or (1000 if args.quick else 2000)
    budget = args.max_seconds or (90.0 if args.quick else 600.0)
    max_iter = 200
    if args.config:
        config = spot_config_from_dict(yaml.safe_load(Path(args.config).read_text()))
    else:
        config = SPOTConfig()
        if args.quick:  # fewer inner iterations keep --quick under 5 minutes
            key = "steps" if config.solver == "adam" else "max_iter"
            options = dict(config.solver_options)
            options[key] = min(int(options.get(key, 200)), max_iter)
            config = dataclasses.replace(config, solver_options=tuple(sorted(options.items())))
    config = dataclasses.replace(
        config, learner=dataclasses.replace(config.learner, max_seconds=budget)
    )
    posterior = load_posterior()
    rows = []
    t_start = time.perf_counter()
    for d in sizes:
        n_seeds = args.seeds or (1 if args.quick else 3)
        sim = SimulationConfig(
            n_observed=d, n_latent=max(1, d // 10), expected_degree=3.0, n_samples=samples
        )
        for seed in range(n_seeds):
            ds = simulate(sim, seed=1000 + seed)
            for method in METHODS:
                pag, seconds, timed_out = run_one(method, ds.data, config, posterior)
                s = score_graph(pag, ds.pag)
                rows.append(
                    {
                        "d": d,
                        "seed": seed,
                        "method": method,
                        **s.as_dict(),
                        "seconds": seconds,
                        "timed_out": timed_out,
                    }
                )
                print(
                    f"d={d:<3} seed={seed} {method:<8} skeleton F1 {s.skeleton_f1:.3f}  arrowhead F1 "
                    f"{s.arrowhead_f1:.3f}  SHD {s.shd:>4}  {seconds:7.1f}s{'  (hit budget)' if timed_out else ''}",
                    flush=True,
                )
    print(
        f"\nsamples={samples} budget={budget:.0f}s/run total={time.perf_counter() - t_start:.0f}s "
        f"config={json.dumps(dataclasses.asdict(config))}"
    )
    means = {}
    for d in sizes:
        print(f"\nd={d}, {max(1, d // 10)} hidden    " + "".join(f"{m:>18}" for m in METHODS))
        for key, label in COLUMNS:
            cells = []
            for m in METHODS:
                v = np.array(
                    [r[key] for r in rows if r["d"] == d and r["method"] == m], dtype=float
                )
                means[(d, m, key)] = float(v.mean())
                cells.append(f"{v.mean():9.3f} ± {v.std():5.3f}")
            print(f"{label:<18}" + "".join(f"{c:>18}" for c in cells))
        for base in ("unguided", "fci"):
            f1 = means[(d, "spot", "skeleton_f1")] / max(means[(d, base, "skeleton_f1")], 1e-9)
            t = means[(d, "spot", "seconds")] / max(means[(d, base, "seconds")], 1e-9)
            print(f"ratio spot/{base:<8}: skeleton F1 x{f1:.2f}, wall time x{t:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))
    top = max(sizes)
    print(
        f"skeleton-F1@{top} spot={means[(top, 'spot', 'skeleton_f1')]:.3f} "
        f"unguided={means[(top, 'unguided', 'skeleton_f1')]:.3f} fci={means[(top, 'fci', 'skeleton_f1')]:.3f} "
        f"seconds={means[(top, 'spot', 'seconds')]:.1f}"
    )


if __name__ == "__main__":
    main()
