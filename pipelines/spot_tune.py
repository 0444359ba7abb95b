"""Ray Tune search over SPOT's hyper-parameters on the protocol's tuning split only.

Searched: the guidance rule (soft sampling, eq. 3 of `dmsec.causal.spot`, or the hard skeleton
``S > cut``), the smoothed-L0 penalty lambda, the coefficient threshold, the posterior's sampling
temperature and floor, the cut, the rho schedule (growth factor, stopping tolerance) and the
inner solver with its learning rate (Adam) or iteration budget (L-BFGS-B). The validation graphs
are datasets of `dmsec.causal.protocol`'s ``tuning`` split (its generator family and seeds), at
the sizes in `TuneConfig.sizes`, standardised as users' tables are; the reporting split is never
touched here.

`TuneConfig.method` picks what is tuned: ``"spot"`` (the default) or ``"unguided"``, the same
learner with every pair free and no posterior, so the baseline can get SPOT's search budget
(the same graphs, trials, scheduler and per-graph budget) over its own knobs (penalty,
threshold, rho schedule, inner solver); its ``best_config.yaml`` is then read by ``benchmarks/
spot.py --unguided-config``.

Each trial runs SPOT on the validation graphs one by one and reports the running means of
skeleton F1, arrowhead F1 and PAG SHD after each graph; ASHA stops trials whose running skeleton F1
is in the bottom of their rung early (time attribute: graphs done). The graphs and their skeleton
posteriors are computed once on the driver and shipped to the trials through the object store.

Outputs in ``out``: ``trials.parquet`` (one row per trial: config, metrics, graphs done),
``best_config.yaml`` (loadable by ``dmsec spot DATA --config``) and ``tune_config.json``
(the resolved search config, versions and seeds). This file is the only place Ray is imported
for SPOT; `dmsec.causal` stays Ray-free.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmsec.causal.learner import MAGLearnerConfig
from dmsec.causal.metrics import score_graph
from dmsec.causal.posterior import load_posterior
from dmsec.causal.protocol import split_dataset, standardize
from dmsec.causal.spot import SPOTConfig, spot, spot_config_to_dict, unguided
from dmsec.errors import ConfigError
from dmsec.provenance import package_versions

METRIC = "skeleton_f1"
TUNED_METHODS = ("spot", "unguided")


@dataclass(frozen=True)
class TuneConfig:
    """What to search on and how long."""

    num_trials: int = 16
    sizes: tuple[int, ...] = (30, 60)
    graphs_per_size: int = 2
    n_samples: int = 2000
    max_concurrent: int = 2
    max_seconds_per_graph: float = 150.0
    seed: int = 1234  # the search's own sampling seed (graphs come from the tuning split)
    num_cpus: int | None = None  # for ray.init when no cluster is running
    method: str = "spot"  # or "unguided": the baseline's own search (see the module docstring)

    def __post_init__(self) -> None:
        if self.method not in TUNED_METHODS:
            raise ConfigError(f"`method` must be one of {TUNED_METHODS}; got {self.method!r}")
        for name in ("num_trials", "graphs_per_size", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be >= 1; got {getattr(self, name)}")
        if not self.sizes or min(self.sizes) < 3:
            raise ConfigError(f"`sizes` must be non-empty, each >= 3; got {self.sizes}")

    @property
    def n_graphs(self) -> int:
        """Validation graphs per trial."""
        return len(self.sizes) * self.graphs_per_size

    @classmethod
    def quick(cls, **overrides: Any) -> TuneConfig:
        """A smoke-test sized search (a couple of minutes on 2 cores)."""
        base = {
            "num_trials": 3,
            "sizes": (8,),
            "graphs_per_size": 2,
            "n_samples": 500,
            "max_seconds_per_graph": 10.0,
        }
        return cls(**{**base, **overrides})


def search_space(method: str = "spot") -> dict[str, Any]:
    """The hyper-parameter distributions (Ray Tune sampling objects); for ``"unguided"`` the
    learner's own knobs only (the guidance keys do not act without a posterior)."""
    from ray import tune

    space = {
        "guidance": tune.choice(["soft", "hard"]),
        "cut": tune.uniform(0.1, 0.6),
        "penalty": tune.loguniform(5e-4, 0.05),
        "w_threshold": tune.uniform(0.02, 0.2),
        "temperature": tune.loguniform(0.3, 3.0),
        "floor": tune.loguniform(1e-4, 0.05),
        "rho_growth": tune.choice([10.0, 30.0]),
        "h_tol": tune.choice([1e-8, 1e-6]),
        "solver": tune.choice(["lbfgsb", "lbfgsb", "adam"]),
        "lr": tune.loguniform(1e-3, 3e-2),
        "max_iter": tune.choice([50, 100, 200]),
    }
    if method == "unguided":
        for key in ("guidance", "cut", "temperature", "floor"):
            del space[key]
        space["penalty"] = tune.loguniform(5e-4, 0.2)  # its spec default (0.05) inside the range
    return space


def trial_config(params: dict[str, Any], max_seconds: float) -> SPOTConfig:
    """The `SPOTConfig` a sampled parameter dict stands for."""
    learner = MAGLearnerConfig(
        penalty=float(params["penalty"]),
        w_threshold=float(params["w_threshold"]),
        rho_growth=float(params["rho_growth"]),
        h_tol=float(params.get("h_tol", 1e-8)),
        standardize=True,
        max_seconds=max_seconds,
    )
    if params["solver"] == "adam":
        options: tuple[tuple[str, float], ...] = (
            ("lr", float(params["lr"])),
            ("steps", int(params["max_iter"])),
        )
    else:
        options = (("max_iter", int(params["max_iter"])),)
    return SPOTConfig(
        guidance=str(params.get("guidance", "soft")),
        cut=float(params.get("cut", 0.5)),
        temperature=float(params.get("temperature", 1.0)),
        floor=float(params.get("floor", 0.0)),
        # the keep-cut is chosen after the search, on the same split (benchmarks/spot.py's
        # variants); a trial without one is SPOT as searched before the keep-cut existed
        keep_cut=None if params.get("keep_cut") is None else float(params["keep_cut"]),
        learner=learner,
        solver=str(params["solver"]),
        solver_options=options,
    )


def validation_graphs(config: TuneConfig) -> list[dict[str, Any]]:
    """Tuning-split datasets (standardised) with their true PAG and skeleton posterior,
    interleaved by size so ASHA's early rungs see every size."""
    posterior = load_posterior()
    graphs = []
    for k in range(config.graphs_per_size):
        for d in config.sizes:
            ds = split_dataset("tuning", d, k, config.n_samples)
            X = standardize(ds.data)
            graphs.append({"data": X, "pag": ds.pag, "posterior": posterior(X), "seed": ds.seed})
    return graphs


def evaluate_trial(
    params: dict[str, Any],
    graphs: list[dict[str, Any]],
    max_seconds: float,
    method: str = "spot",
) -> Any:
    """Run one configuration graph by graph, yielding running-mean metrics (the trial body)."""
    config = trial_config(params, max_seconds)
    rows = []
    for g in graphs:
        if method == "unguided":
            result = unguided(g["data"], config)
        else:
            result = spot(g["data"], config, g["posterior"])
        s = score_graph(result.pag, g["pag"])
        rows.append([s.skeleton_f1, s.arrowhead_f1, s.shd, result.seconds])
        mean = np.mean(rows, axis=0)
        yield {
            METRIC: float(mean[0]),
            "arrowhead_f1": float(mean[1]),
            "shd": float(mean[2]),
            "seconds": float(mean[3]),
            "graphs": len(rows),
        }


def _trainable(
    params: dict[str, Any], graphs: list[dict[str, np.ndarray]], max_seconds: float, method: str
) -> None:
    from ray import tune

    for metrics in evaluate_trial(params, graphs, max_seconds, method):
        tune.report(metrics)


def run_tune(config: TuneConfig, out: str | Path) -> dict[str, Any]:
    """Run the search; write trials.parquet, best_config.yaml and tune_config.json to `out`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    import yaml
    from ray import cloudpickle, tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # ship this module's trainable by value: workers need not have the checkout on their path
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=config.num_cpus, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        graphs = validation_graphs(config)
        scheduler = ASHAScheduler(
            time_attr="graphs", max_t=config.n_graphs, grace_period=1, reduction_factor=2
        )
        tuner = tune.Tuner(
            tune.with_parameters(
                _trainable,
                graphs=graphs,
                max_seconds=config.max_seconds_per_graph,
                method=config.method,
            ),
            param_space=search_space(config.method),
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                num_samples=config.num_trials,
                scheduler=scheduler,
                max_concurrent_trials=config.max_concurrent,
                search_alg=BasicVariantGenerator(random_state=config.seed),
            ),
            run_config=tune.RunConfig(name="spot_tune", storage_path=str(out / "ray"), verbose=0),
        )
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    rows = []
    for r in results:
        if r.metrics is None or METRIC not in r.metrics:
            continue
        rows.append(
            {
                **{f"config/{k}": v for k, v in r.config.items()},
                **{k: r.metrics[k] for k in (METRIC, "arrowhead_f1", "shd", "seconds", "graphs")},
            }
        )
    if not rows:
        raise RuntimeError("no trial reported a result; see the Ray logs under " + str(out / "ray"))
    pq.write_table(pa.Table.from_pylist(rows), out / "trials.parquet")
    # best = highest skeleton F1 among trials that saw every graph (ASHA-stopped ones saw fewer)
    complete = [r for r in rows if r["graphs"] == config.n_graphs] or rows
    best_row = max(complete, key=lambda r: r[METRIC])
    params = {k.split("/", 1)[1]: v for k, v in best_row.items() if k.startswith("config/")}
    best = trial_config(params, max_seconds=0.0)
    best_path = out / "best_config.yaml"
    best_path.write_text(yaml.safe_dump(spot_config_to_dict(best), sort_keys=True))
    record = {
        "tune_config": asdict(config),
        "split": "tuning",
        "method": config.method,
        "graph_seeds": [g["seed"] for g in graphs],
        "best": best_row,
        "versions": package_versions(),
    }
    (out / "tune_config.json").write_text(json.dumps(record, indent=1, default=str))
    return {
        "metric": METRIC,
        "value": best_row[METRIC],
        "config_path": str(best_path),
        "trials": len(rows),
    }
