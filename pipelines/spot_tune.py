"""Ray Tune search over SPOT's hyper-parameters on held-out synthetic graphs.

Searched: the smoothed-L0 penalty lambda, the coefficient threshold, the posterior's sampling
temperature and floor (eq. 3 of `dmsec.causal.spot`), the rho schedule (growth factor, decrease
test) and the inner solver with its learning rate (Adam) or iteration budget (L-BFGS-B).

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
from dmsec.causal.simulate import SimulationConfig, simulate
from dmsec.causal.spot import SPOTConfig, spot, spot_config_to_dict
from dmsec.errors import ConfigError
from dmsec.provenance import package_versions

METRIC = "skeleton_f1"


@dataclass(frozen=True)
class TuneConfig:
    """What to search on and how long."""

    num_trials: int = 24
    n_graphs: int = 4
    n_observed: int = 30
    n_latent: int = 3
    n_samples: int = 2000
    expected_degree: float = 3.0
    max_concurrent: int = 2
    max_seconds_per_graph: float = 120.0
    seed: int = 1234  # graph seeds are seed, seed + 1, ...: disjoint from posterior training
    num_cpus: int | None = None  # for ray.init when no cluster is running

    def __post_init__(self) -> None:
        for name in ("num_trials", "n_graphs", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be >= 1; got {getattr(self, name)}")
        if self.n_observed < 3:
            raise ConfigError(f"`n_observed` must be >= 3; got {self.n_observed}")

    @classmethod
    def quick(cls, **overrides: Any) -> TuneConfig:
        """A smoke-test sized search (a couple of minutes on 2 cores)."""
        base = {
            "num_trials": 3,
            "n_graphs": 2,
            "n_observed": 8,
            "n_latent": 1,
            "n_samples": 500,
            "max_seconds_per_graph": 10.0,
        }
        return cls(**{**base, **overrides})


def search_space() -> dict[str, Any]:
    """The hyper-parameter distributions (Ray Tune sampling objects)."""
    from ray import tune

    return {
        "penalty": tune.loguniform(0.005, 0.2),
        "w_threshold": tune.uniform(0.02, 0.3),
        "temperature": tune.loguniform(0.3, 3.0),
        "floor": tune.loguniform(1e-3, 0.1),
        "rho_growth": tune.choice([5.0, 10.0, 20.0]),
        "h_decrease": tune.choice([0.25, 0.5]),
        "solver": tune.choice(["lbfgsb", "adam"]),
        "lr": tune.loguniform(1e-3, 5e-2),
        "max_iter": tune.choice([100, 200, 400]),
    }


def trial_config(params: dict[str, Any], max_seconds: float) -> SPOTConfig:
    """The `SPOTConfig` a sampled parameter dict stands for."""
    learner = MAGLearnerConfig(
        penalty=float(params["penalty"]),
        w_threshold=float(params["w_threshold"]),
        rho_growth=float(params["rho_growth"]),
        h_decrease=float(params["h_decrease"]),
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
        temperature=float(params["temperature"]),
        floor=float(params["floor"]),
        learner=learner,
        solver=str(params["solver"]),
        solver_options=options,
    )


def validation_graphs(config: TuneConfig) -> list[dict[str, np.ndarray]]:
    """Simulated validation graphs with their data, true PAG and skeleton posterior."""
    sim = SimulationConfig(
        n_observed=config.n_observed,
        n_latent=config.n_latent,
        expected_degree=config.expected_degree,
        n_samples=config.n_samples,
    )
    posterior = load_posterior()
    graphs = []
    for g in range(config.n_graphs):
        ds = simulate(sim, seed=config.seed + g)
        graphs.append({"data": ds.data, "pag": ds.pag, "posterior": posterior(ds.data)})
    return graphs


def evaluate_trial(
    params: dict[str, Any], graphs: list[dict[str, np.ndarray]], max_seconds: float
) -> Any:
    """Run one configuration graph by graph, yielding running-mean metrics (the trial body)."""
    config = trial_config(params, max_seconds)
    rows = []
    for g in graphs:
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
    params: dict[str, Any], graphs: list[dict[str, np.ndarray]], max_seconds: float
) -> None:
    from ray import tune

    for metrics in evaluate_trial(params, graphs, max_seconds):
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
                _trainable, graphs=graphs, max_seconds=config.max_seconds_per_graph
            ),
            param_space=search_space(),
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
    record = {"tune_config": asdict(config), "best": best_row, "versions": package_versions()}
    (out / "tune_config.json").write_text(json.dumps(record, indent=1, default=str))
    return {
        "metric": METRIC,
        "value": best_row[METRIC],
        "config_path": str(best_path),
        "trials": len(rows),
    }
