"""SPOT vs the unguided learner (ABIC) vs causal-learn's FCI on the protocol's two splits.

Data (`dmsec.causal.protocol`): per split, size (observed variables) and seed one dataset from
that split's generator family: Erdos-Renyi and scale-free DAGs, expected degree 2-4, 5-15%
hidden vertices (confounders with >= 2 observed children, or random), varied weights, noise
scales and noise families. SPOT's settings and its posterior's training saw only the *tuning*
family; the *reporting* family differs in seeds and generators (hubs-as-effects scale-free
graphs, Laplace / exponential / Gumbel / Student-t noise, other weight and noise ranges). The
headline is the reporting split on the standardised scale (columns scaled to unit variance, as
users' tables reach SPOT); the raw scale is beside it, where the learners see raw columns
(``standardize=False``) and so can exploit varsortability, printed per dataset (share of true
directed edges whose effect has the larger variance; 0.5 after standardising).

Reported per table (split and scale) and size: skeleton F1, arrowhead F1, PAG SHD and seconds,
mean ± standard deviation over seeds, for

- SPOT: the library's default (`dmsec.causal.spot.SPOTConfig`: hard guidance at ``S > 0.32``,
  keep-cut 0.5, i.e. every pair with ``S > 0.5`` stays adjacent in the learned MAG whatever its
  coefficient, and ``skeleton="posterior"``: the result is the posterior's skeleton ``S > 0.32``
  with the learned marks, ``o-o`` where the learner has no edge, so it never drops a posterior
  pair);
- unguided(def): the same learner with every pair free and no posterior (ABIC), at the spec's
  defaults (penalty 0.05, threshold 0.05);
- unguided(tuned): it at the settings of its own Ray Tune search, with SPOT's search budget
  (``dmsec spot tune`` with ``method: unguided``: same tuning-split graphs, trial count,
  scheduler and per-graph budget), read from ``--unguided-config`` (default
  ``benchmarks/configs/spot_unguided.yaml``, which records that search);
- unguided(spot), only when asked (``--methods ...,unguided_spot``): it at SPOT's settings,
  which were tuned for the learner restricted to SPOT's skeleton and make it dense and slow
  over all pairs (what the previous rounds reported as "unguided");
- FCI (causal-learn, Fisher z, alpha `FCI_ALPHA` = 0.05, chosen on the tuning split over
  0.001 / 0.01 / 0.05 / 0.1 by the unguided learner's rule; `--fci-alpha` sets another);
- posterior: SPOT's skeleton posterior thresholded at its cut, alone (no marks; its seconds are
  the posterior's);

SPOT's ratios to each, and, per table, the final-graph variants of `dmsec.causal.variants`
computed from the same SPOT runs (the keep-cut at several values, the learner without it, each
keep-cut's graph added to the posterior's skeleton or with the posterior's skeleton and its
marks, and the two simple combinations: the posterior's skeleton with the unkept learner's marks,
the union with the posterior at a higher cut). The tuning split's table then prints the choice
that split makes (`variants.choose_variant`: best mean skeleton F1 among the variants whose
skeleton F1 is at least the posterior's on every tuning dataset, with arrowhead F1 at least
FCI's on the datasets where FCI finished; for the unguided learner the setting with the better
skeleton F1), and the headline's ``unguided`` is the setting chosen there. FCI and the posterior use correlations only, so on the raw scale their result equals the
standardised one and is computed once.

Budget: every learner run gets the same wall-time budget, ``--seconds-per-variable`` x d (default
1 s: 30 / 60 / 100 s at d = 30 / 60 / 100; `--max-seconds` sets one figure for all sizes). SPOT's
includes computing its posterior. SPOT and the unguided learner stop at the deadline with what
they have (flagged "hit budget", scored as is; the deadline is checked at every objective
evaluation). FCI has no anytime result: a run past the budget is stopped and reported as
"timeout" (counted in its table, left out of the means; the last line says ``fci=timeout`` when
no FCI run at the top size finished). The budget is set a priori from the 30-minute limit, not
tuned. Runs go to `--workers` processes; seconds are each run's own wall time, so on a shared
machine the learners get less CPU within the same budget (pessimistic for all of them).

causal-learn 0.1.4.8 (the newest on the package index) ships no GFCI; its other latent-variable
learners (RCD, CAM-UV) did not finish one 30-variable dataset in 4 minutes here, so no second
outside baseline is run.

Tables (``--tables``, split:scale):

    python benchmarks/spot.py          # reporting:std (the headline) and tuning:std (where the
                                       # choices are made) at 30/60/100; 2 seeds each
    python benchmarks/spot.py --quick  # reporting:std only, 1 seed, 0.5 s per variable
    python benchmarks/spot.py --tables reporting:raw --side-sizes 30,60   # the raw scale

The worst case (every run at its budget) is printed before the runs start: 3,040 run-seconds for
the default (about 25 minutes on 2 workers; the unguided learner at its defaults and FCI at
d <= 60 finish well before it), 380 for ``--quick``. Measured 2026-12-05 on the 2-core machine
shared with other jobs (so pessimistic): default 6 min 15 s wall (commit 055ba0e, load 1-4; 10
min 51 s at load 8-12 before the first-solve BLAS fix), ``--quick`` 1 min 39 s.
``--out`` keeps the rows, ``--from-rows`` prints the tables of a saved run.

The last line is ``skeleton-F1@100 spot=<a> unguided=<b> fci=<c> posterior=<p> seconds=<s>``:
means over the reporting split's standardised datasets at the largest size; ``seconds`` is
SPOT's mean time (posterior included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dmsec.causal.baselines import fci_pag_within
from dmsec.causal.graphs import NONE
from dmsec.causal.learner import MAGLearnerConfig
from dmsec.causal.metrics import score_graph
from dmsec.causal.posterior import load_posterior
from dmsec.causal.protocol import split_dataset, standardize
from dmsec.causal.simulate import varsortability
from dmsec.causal.skeleton import posterior_adjacency, skeleton_pag
from dmsec.causal.spot import SPOTConfig, skeleton_cut, spot, spot_config_from_dict, unguided
from dmsec.causal.variants import choose_variant, variant_pags

METHODS = ("spot", "unguided", "unguided_tuned", "unguided_spot", "fci", "posterior")
RUN_METHODS = METHODS[:5]  # "posterior" is read off SPOT's runs (its S, before the learner)
DEFAULT_RUN = ("spot", "unguided", "unguided_tuned", "fci")
# The posterior-alone baseline gets its own cut (it need not be SPOT's guidance cut), chosen on
# the tuning split by the same rule; POSTERIOR_CUT is that choice for runs without a tuning table
# (--quick): 0.4 in the default run of 2026-12-05 (tuning mean skeleton F1 0.817 / 0.831 / 0.847 /
# 0.851 / 0.849 / 0.842 at 0.2 / 0.25 / 0.32 / 0.4 / 0.5 / 0.6); before, it was read at SPOT's 0.32
POSTERIOR_CUTS = (0.2, 0.25, 0.32, 0.4, 0.5, 0.6)
POSTERIOR_CUT = 0.4
# FCI's Fisher-z test level, chosen on the tuning split (standardised, the 6 datasets, 1 s per
# variable) with the unguided learner's rule, best mean skeleton F1, over the grid 0.001 / 0.01 /
# 0.05 / 0.1 (`--tables tuning:std --methods fci --fci-alpha A`, 2026-12-05, commit 5ab5a67;
# no run timed out): 0.713 / 0.730 / 0.741 / 0.733. The earlier fixed 0.01 was untuned.
FCI_ALPHA = 0.05
UNGUIDED_CONFIG = Path(__file__).resolve().parent / "configs" / "spot_unguided.yaml"
LABELS = {
    "spot": "SPOT",
    "unguided": "unguided(def)",
    "unguided_tuned": "unguided(tuned)",
    "unguided_spot": "unguided(spot)",
    "fci": "FCI",
    "posterior": "posterior",
}
# the unguided learner's settings: the spec's defaults (penalty 0.05, threshold 0.05), its own
# Ray Tune search (--unguided-config), SPOT's settings (tuned for the restricted learner)
UNGUIDED_SETTINGS = {
    "unguided": "spec defaults",
    "unguided_tuned": "its own Ray Tune search",
    "unguided_spot": "SPOT's tuned settings",
}
# which setting the last line reports when the run has no tuning table (--quick): the one the
# tuning split chose in the default run of 2026-12-05 (commit 6f10577): skeleton F1 0.642 /
# 0.742 / 0.509 with its own search vs 0.512 / 0.640 / 0.420 at the defaults, d = 30 / 60 / 100
UNGUIDED_DEFAULT = "unguided_tuned"
COLUMNS = (
    ("skeleton_f1", "skeleton F1"),
    ("arrowhead_f1", "arrowhead F1"),
    ("shd", "PAG SHD"),
    ("seconds", "seconds"),
)
HEADLINE = ("reporting", "std")
_POSTERIOR: Any = None


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="reporting:std only, 1 seed, 0.5 s/var")
    p.add_argument("--sizes", default="30,60,100", help="sizes of the headline table")
    p.add_argument("--side-sizes", default="30,60,100", help="sizes of the other tables")
    p.add_argument("--tables", default=None, help="split:scale list (default: see the docstring)")
    p.add_argument("--seeds", type=int, default=None, help="datasets per table and size")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--seconds-per-variable", type=float, default=None, help="budget / d")
    p.add_argument("--max-seconds", type=float, default=None, help="one budget for all sizes")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fci-alpha", type=float, default=FCI_ALPHA, help=f"FCI's test level (default {FCI_ALPHA}: chosen on the tuning split)")  # fmt: skip
    p.add_argument("--config", default=None, help="YAML SPOT config (e.g. from a tune)")
    p.add_argument(
        "--methods", default=",".join(DEFAULT_RUN), help=f"learners to run, of {RUN_METHODS}"
    )
    p.add_argument(
        "--unguided-config",
        default=str(UNGUIDED_CONFIG),
        help="YAML of the unguided(tuned) column (a `dmsec spot tune` search with method unguided)",
    )
    p.add_argument("--out", default=None, help="JSON file for the per-run rows (after each run)")
    p.add_argument("--from-rows", default=None, help="print the tables of a saved --out file")
    args = p.parse_args()
    for name in ("seeds", "samples", "workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    return args


def _init_worker() -> None:
    global _POSTERIOR
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import causallearn.search.ConstraintBased.FCI  # noqa: F401  (import time is no FCI time)

    _POSTERIOR = load_posterior()


def _spot_row(X: np.ndarray, config: SPOTConfig, budget: float, true_pag: np.ndarray) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """SPOT within `budget` seconds, its posterior included; also the posterior alone and every
    final-graph variant of `dmsec.causal.variants` (computed after the timed run)."""
    t0 = time.perf_counter()
    S = _POSTERIOR(X)
    t_post = time.perf_counter() - t0
    left = max(budget - t_post, 1e-3)
    config = dataclasses.replace(config, learner=dataclasses.replace(config.learner, max_seconds=left))  # fmt: skip
    result = spot(X, config, S)
    result.seconds += t_post
    cut = skeleton_cut(config)
    post = score_graph(skeleton_pag(posterior_adjacency(S, cut)), true_pag).as_dict()
    by_cut = {f"{c:g}": score_graph(skeleton_pag(posterior_adjacency(S, c)), true_pag).as_dict() for c in POSTERIOR_CUTS}  # fmt: skip
    variants = {
        name: {
            k: v
            for k, v in score_graph(pag, true_pag).as_dict().items()
            if k in ("skeleton_f1", "arrowhead_f1", "shd")
        }  # fmt: skip
        for name, pag in variant_pags(
            result.W1, result.W2, S, cut, config.learner.w_threshold
        ).items()  # fmt: skip
    }
    return result, {"posterior_scores": post, "posterior_by_cut": by_cut, "posterior_seconds": t_post, "variants": variants}  # fmt: skip


def _unguided_config(method: str, config: SPOTConfig, tuned: SPOTConfig | None) -> SPOTConfig:
    """The unguided learner's settings (see UNGUIDED_SETTINGS): SPOT's own for "unguided_spot",
    the `tuned` ones for "unguided_tuned", the spec's defaults for "unguided"; always at the
    run's scale and budget."""
    if method == "unguided_spot":
        return config
    if method == "unguided_tuned":
        if tuned is None:
            raise ValueError("unguided_tuned needs --unguided-config")
        own = dataclasses.replace(tuned.learner, standardize=config.learner.standardize, max_seconds=config.learner.max_seconds)  # fmt: skip
        return dataclasses.replace(tuned, learner=own)
    own = dataclasses.replace(MAGLearnerConfig(), standardize=config.learner.standardize, max_seconds=config.learner.max_seconds)  # fmt: skip
    return dataclasses.replace(config, learner=own)


def run_job(job: dict[str, Any], config: SPOTConfig, tuned: SPOTConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """One method on one dataset within the job's budget; returns the scored row."""
    ds = split_dataset(job["split"], job["d"], job["seed"], job["samples"])
    raw = job["scale"] == "raw"
    X = ds.data if raw else standardize(ds.data)
    learner = dataclasses.replace(config.learner, standardize=not raw, max_seconds=job["budget"])
    config = dataclasses.replace(config, learner=learner)
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if job["method"] == "fci":
        pag = fci_pag_within(X, job["budget"], alpha=job["alpha"])
        status = "ok" if pag is not None else "timeout"
    else:
        if job["method"] == "spot":
            result, extra = _spot_row(X, config, job["budget"], ds.pag)
        else:
            result = unguided(X, _unguided_config(job["method"], config, tuned))
        pag, status = result.pag, "budget" if result.extra.get("timed_out") else "ok"
    seconds = time.perf_counter() - t0
    scores = score_graph(ds.pag if pag is None else pag, ds.pag).as_dict()
    if pag is None:
        scores = {k: math.nan for k in scores}
    return {
        **job,
        **scores,
        **extra,
        "seconds": result.seconds if job["method"] == "spot" else seconds,
        "status": status,
        "varsortability": varsortability(ds.data, ds.mag),
        "generator": ds.config.describe() if ds.config else "",
        "true_edges": int(np.sum(ds.mag != NONE) // 2),
    }


def tables(args: argparse.Namespace) -> list[tuple[str, str, list[int]]]:
    """(split, scale, sizes) of each table; the headline table first."""
    default = "reporting:std" if args.quick else "reporting:std,tuning:std"
    out = []
    for item in (args.tables or default).split(","):
        split, _, scale = item.partition(":")
        if split not in ("tuning", "reporting") or scale not in ("std", "raw"):
            raise SystemExit(f"--tables: {item!r} is not split:scale (tuning|reporting:std|raw)")
        sizes = args.sizes if (split, scale) == HEADLINE else args.side_sizes
        out.append((split, scale, sorted({int(s) for s in sizes.split(",")}, reverse=True)))
    return sorted(out, key=lambda t: (t[:2] != HEADLINE, t[0] != "reporting"))


def budget_of(args: argparse.Namespace, d: int) -> float:
    """The wall budget of one learner run at `d` observed variables."""
    if args.max_seconds:
        return float(args.max_seconds)
    return (args.seconds_per_variable or (0.5 if args.quick else 1.0)) * d


def make_jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    n_seeds = args.seeds or (1 if args.quick else 2)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(RUN_METHODS))
    if unknown:
        raise SystemExit(f"--methods: {unknown} unknown; choose from {list(RUN_METHODS)}")
    jobs = []
    # headline first, then largest first: better packing over workers
    for split, scale, sizes in tables(args):
        for d in sizes:
            for seed in range(n_seeds):
                for method in methods:
                    if method == "fci" and scale == "raw":
                        continue  # correlation-based: identical to the std run
                    job = {"split": split, "d": d, "seed": seed, "scale": scale, "method": method}
                    if method == "fci":
                        job["alpha"] = args.fci_alpha
                    jobs.append({**job, "samples": args.samples, "budget": budget_of(args, d)})
    unique = {json.dumps(j, sort_keys=True): j for j in jobs}  # a std FCI run is needed once
    return list(unique.values())


def with_posterior_rows(rows: list[dict[str, Any]], cut: float) -> list[dict[str, Any]]:
    """`rows` plus one "posterior" row per SPOT run: its S thresholded at `cut` and scored alone
    (its seconds are the posterior's)."""
    out = [r for r in rows if r["method"] != "posterior"]
    for r in rows:
        if r["method"] == "spot" and "posterior_scores" in r:
            scores = r.get("posterior_by_cut", {}).get(f"{cut:g}", r["posterior_scores"])
            post = {**r, **scores, "method": "posterior", "status": "ok"}
            post["seconds"] = r.get("posterior_seconds", math.nan)
            out.append(post)
    return out


def posterior_cut_on_tuning(rows: list[dict[str, Any]]) -> float | None:
    """The posterior-alone baseline's cut, chosen like the unguided learner's setting: best mean
    skeleton F1 over the tuning split's standardised SPOT runs (`POSTERIOR_CUTS`); None without
    them."""
    spots = [r for r in rows if (r["split"], r["scale"], r["method"]) == ("tuning", "std", "spot") and "posterior_by_cut" in r]  # fmt: skip
    if not spots:
        return None
    f1 = {c: [r["posterior_by_cut"][c]["skeleton_f1"] for r in spots] for c in spots[0]["posterior_by_cut"]}  # fmt: skip
    return float(choose_variant(f1, {}, 0.0))


def _select(rows: list[dict[str, Any]], split: str, scale: str, d: int, method: str) -> list[dict[str, Any]]:  # fmt: skip
    src = "std" if method == "fci" else scale
    return [r for r in rows if (r["split"], r["scale"], r["d"], r["method"]) == (split, src, d, method)]  # fmt: skip


def _finished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status", "ok") != "timeout"]


def _paired(
    rows: list[dict[str, Any]], where: tuple[str, str, int], base: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(SPOT row, `base` row) per seed of one table where both have a result."""
    spots = {r["seed"]: r for r in _finished(_select(rows, *where, "spot"))}
    bases = {r["seed"]: r for r in _finished(_select(rows, *where, base))}
    return [(spots[k], bases[k]) for k in sorted(set(spots) & set(bases))]


def _print_table(rows: list[dict[str, Any]], split: str, scale: str, d: int, means: dict[Any, float]) -> None:  # fmt: skip
    by_seed = {r["seed"]: r["varsortability"] for r in rows if (r["split"], r["d"]) == (split, d)}
    vs = [by_seed[k] for k in sorted(by_seed)]
    shown = [m for m in METHODS if any(r["method"] == m for r in rows)]
    counts = []
    for m in shown:
        if m == "posterior":
            continue
        sel = _select(rows, split, scale, d, m)
        late = sum(r.get("status") in ("timeout", "budget") for r in sel)
        word = "timed out" if m == "fci" else "hit budget"
        counts.append(f"{LABELS[m]} {len(sel)}" + (f" ({late} {word})" if late else ""))
    budgets = sorted({r["budget"] for r in rows if (r["split"], r["scale"], r["d"]) == (split, scale, d) and "budget" in r})  # fmt: skip
    print(f"\n[{split} split, {scale} scale] d={d}, budget {'/'.join(f'{b:.0f}' for b in budgets)} s per run; "
          f"runs: {', '.join(counts)}; raw varsortability {np.mean(vs):.2f} ({', '.join(f'{v:.2f}' for v in vs)})")  # fmt: skip
    print(" " * 16 + "".join(f"{LABELS[m]:>18}" for m in shown))
    for key, label in COLUMNS:
        cells = []
        for m in shown:
            v = np.array(
                [r[key] for r in _finished(_select(rows, split, scale, d, m))], dtype=float
            )
            means[(split, scale, d, m, key)] = float(v.mean()) if len(v) else math.nan
            ran = bool(_select(rows, split, scale, d, m))
            cells.append(
                f"{v.mean():9.3f} ± {v.std():5.3f}" if len(v) else "timeout" if ran else "not run"
            )
        print(f"{label:<16}" + "".join(f"{c:>18}" for c in cells))
    for base in METHODS[1:]:
        pairs = _paired(rows, (split, scale, d), base)
        if not _select(rows, split, scale, d, base):
            continue
        if not pairs:
            print(f"ratio spot/{LABELS[base]:<14}: no dataset where both have a result")
            continue
        f1 = np.mean([a["skeleton_f1"] for a, _ in pairs]) / max(np.mean([b["skeleton_f1"] for _, b in pairs]), 1e-9)  # fmt: skip
        t = np.mean([a["seconds"] for a, _ in pairs]) / max(np.mean([b["seconds"] for _, b in pairs]), 1e-9)  # fmt: skip
        print(f"ratio spot/{LABELS[base]:<14}: skeleton F1 x{f1:.2f}, wall time x{t:.2f} (on the {len(pairs)} datasets where both have a result)")  # fmt: skip
    _print_variants(rows, split, scale, d)


def _print_variants(rows: list[dict[str, Any]], split: str, scale: str, d: int) -> None:
    """SPOT's final-graph variants (`dmsec.causal.variants`) from the same runs: skeleton F1 /
    arrowhead F1 means."""
    runs = [r for r in _select(rows, split, scale, d, "spot") if "variants" in r]
    if not runs:
        return
    names = list(runs[0]["variants"])
    cells = []
    for name in names:
        sk = np.mean([r["variants"][name]["skeleton_f1"] for r in runs])
        ah = np.mean([r["variants"][name]["arrowhead_f1"] for r in runs])
        cells.append(f"{name} {sk:.3f}/{ah:.3f}")
    print(f"SPOT variants (skeleton F1 / arrowhead F1): {'; '.join(cells)}")


def choices_on_tuning(rows: list[dict[str, Any]]) -> dict[str, str] | None:
    """The SPOT variant and the unguided setting the tuning split's standardised runs choose
    (`variants.choose_variant`: best skeleton F1 over all its datasets, with arrowhead F1 >= FCI's
    on the datasets where FCI finished); None without them."""
    tune = [r for r in rows if (r["split"], r["scale"]) == ("tuning", "std")]
    spots = [r for r in tune if r["method"] == "spot" and "variants" in r]
    if not spots:
        return None
    fci = {(r["d"], r["seed"]): r["arrowhead_f1"] for r in _finished([r for r in tune if r["method"] == "fci"])}  # fmt: skip
    ref = float(np.mean(list(fci.values()))) if fci else 0.0
    names = list(spots[0]["variants"])
    skeleton = {k: [r["variants"][k]["skeleton_f1"] for r in spots] for k in names}
    marks = {k: [r["variants"][k]["arrowhead_f1"] for r in spots if (r["d"], r["seed"]) in fci] for k in names}  # fmt: skip
    ung = {m: [r["skeleton_f1"] for r in _finished(tune) if r["method"] == m] for m in UNGUIDED_SETTINGS}  # fmt: skip
    ung = {k: v for k, v in ung.items() if v}
    posterior = [r["posterior_scores"]["skeleton_f1"] for r in spots]
    return {
        "spot": choose_variant(skeleton, marks, ref, posterior),
        "unguided": choose_variant(ung, {}, 0.0) if ung else UNGUIDED_DEFAULT,
        "fci_arrowhead_f1": f"{ref:.3f} on {len(fci)} datasets",
        "datasets": str(len(spots)),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int, str, str], float]:
    """Print the tables; return the means by (split, scale, size, method, metric)."""
    means: dict[tuple[str, str, int, str, str], float] = {}
    keys = sorted({(r["split"], r["scale"], r["d"]) for r in rows}, key=lambda k: (k[:2] != HEADLINE, k[0] != "reporting", k[1] != "std", k[2]))  # fmt: skip
    for split, scale, d in keys:
        _print_table(rows, split, scale, d, means)
    return means


def run_all(args: argparse.Namespace, config: SPOTConfig, tuned: SPOTConfig | None) -> list[dict[str, Any]]:  # fmt: skip
    """Run every job over the worker pool, printing (and saving) each row as it completes."""
    rows: list[dict[str, Any]] = []
    jobs = make_jobs(args)
    worst = sum(j["budget"] for j in jobs)
    print(f"{len(jobs)} runs; worst case {worst:.0f} run-seconds = {worst / args.workers / 60:.1f} min "
          f"on {args.workers} workers (plus data, posterior and start-up)", flush=True)  # fmt: skip
    t_start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_init_worker) as pool:
        futures = [pool.submit(run_job, job, config, tuned) for job in jobs]
        for fut in as_completed(futures):
            r = fut.result()
            rows.append(r)
            flag = {"ok": "", "budget": "  (hit budget)", "timeout": "  (TIMEOUT: no result)"}[r["status"]]  # fmt: skip
            print(
                f"{r['split']:<9} {r['scale']} d={r['d']:<3} seed={r['seed']} {r['method']:<13} "
                f"skeleton F1 {r['skeleton_f1']:.3f}  arrowhead F1 {r['arrowhead_f1']:.3f}  "
                f"SHD {r['shd']:>4.0f}  {r['seconds']:6.1f}s{flag}"
                f"  | {r['generator']}, {r['true_edges']} true edges, varsortability {r['varsortability']:.2f}",
                flush=True,
            )  # fmt: skip
            if args.out:
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(rows, indent=1))
    print(f"total {time.perf_counter() - t_start:.0f}s")
    return rows


def main() -> None:
    args = parse_args()
    if args.config:
        config = spot_config_from_dict(yaml.safe_load(Path(args.config).read_text()))
    else:
        config = SPOTConfig()
    tuned = None
    if args.unguided_config:
        tuned = spot_config_from_dict(yaml.safe_load(Path(args.unguided_config).read_text()))
        UNGUIDED_SETTINGS["unguided_tuned"] += f" ({Path(args.unguided_config).name}: penalty {tuned.learner.penalty:.4g}, threshold {tuned.learner.w_threshold:.4g})"  # fmt: skip
    if args.from_rows:
        rows = json.loads(Path(args.from_rows).read_text())
        print(f"tables of {args.from_rows} ({len(rows)} runs)")
    else:
        rows = run_all(args, config, tuned)
        print(f"\nsamples={args.samples} workers={args.workers} budget per run: "
              f"{'/'.join(f'{budget_of(args, d):.0f}' for d in sorted({r['d'] for r in rows}))} s "
              f"config={json.dumps(dataclasses.asdict(config))}")  # fmt: skip
    post_cut = posterior_cut_on_tuning(rows)
    post_origin = "chosen on this run's tuning split" if post_cut is not None else "chosen on the tuning split before"  # fmt: skip
    post_cut = POSTERIOR_CUT if post_cut is None else post_cut
    rows = with_posterior_rows(rows, post_cut)
    ran = {r["method"] for r in rows}
    print(f"columns: SPOT = the library's default (skeleton {config.skeleton!r} at cut {skeleton_cut(config)}, keep_cut {config.keep_cut}); "
          + "".join(f"{LABELS[m]} = the unguided learner at {UNGUIDED_SETTINGS[m]}; " for m in UNGUIDED_SETTINGS if m in ran)
          + f"FCI = Fisher z at alpha {args.fci_alpha:g}{' (chosen on the tuning split)' if args.fci_alpha == FCI_ALPHA else ' (set by --fci-alpha)'}; "
          + f"posterior = S > {post_cut:g} alone, no marks (its own cut, {post_origin}, best mean skeleton F1 over {'/'.join(f'{c:g}' for c in POSTERIOR_CUTS)})")  # fmt: skip
    means = summarise(rows)
    chosen = choices_on_tuning(rows)
    ung = UNGUIDED_DEFAULT
    if chosen is None:
        print(f"\nno tuning-split table in this run: unguided = {ung} ({UNGUIDED_SETTINGS[ung]}), as chosen on the tuning split before")  # fmt: skip
    else:
        ung = chosen["unguided"]
        print(f"\nchosen on the tuning split (standardised, {chosen['datasets']} datasets, every size run): "
              f"SPOT variant {chosen['spot']} (rule: best skeleton F1 among the variants never below the posterior's on a tuning dataset, with arrowhead F1 >= FCI's {chosen['fci_arrowhead_f1']}); "
              f"unguided = {ung} ({UNGUIDED_SETTINGS[ung]}, best skeleton F1)")  # fmt: skip
    if ung not in ran:  # the chosen setting was not run here: the first one that was
        ung = next((u for u in UNGUIDED_SETTINGS if u in ran), ung)
    head = [r for r in rows if (r["split"], r["scale"]) == HEADLINE]
    if not head:
        print("\nno headline line: the reporting split's standardised table was not run")
        return
    split, top = head[0]["split"], max(r["d"] for r in head)
    m = {k: means.get((split, "std", top, k, "skeleton_f1"), math.nan) for k in METHODS}
    fci = _select(rows, split, "std", top, "fci")
    print(f"\nheadline: {split} split, standardised scale, d={top}; unguided = {LABELS[ung]}; "
          f"FCI finished {len(_finished(fci))} of {len(fci)} runs within the budget")  # fmt: skip

    def text(v: float) -> str:
        return "timeout" if math.isnan(v) else f"{v:.3f}"

    print(
        f"skeleton-F1@{top} spot={text(m['spot'])} unguided={text(m[ung])} fci={text(m['fci'])} "
        f"posterior={text(m['posterior'])} "
        f"seconds={means.get((split, 'std', top, 'spot', 'seconds'), math.nan):.1f}"
    )


if __name__ == "__main__":
    main()
