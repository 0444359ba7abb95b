"""`dmsec spot`: causal discovery on a Parquet table, its hyper-parameter search, its posterior.

dmsec spot DATA.parquet --out GRAPH.json       # SPOT on the numeric columns (same as `run`)
dmsec spot tune --out DIR                      # Ray Tune search (pipelines/spot_tune.py)
dmsec spot build-posterior --out DIR           # retrain the skeleton posterior
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import click


class _DefaultToRun(click.Group):
    """A group whose first argument, when it is not a sub-command, is the data file of `run`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToRun)
def spot() -> None:
    """SPOT causal discovery with latent confounders (skeleton-posterior-guided MAG learning).

    \b
      dmsec spot DATA.parquet --out GRAPH.json   learn a PAG (same as `dmsec spot run ...`)
      dmsec spot tune --out DIR                  Ray Tune search over SPOT's hyper-parameters
      dmsec spot build-posterior --out DIR       retrain the skeleton posterior
    """


@spot.command("run")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Graph file: .json (edges + run info) or .parquet (edge table).",
)
@click.option(
    "--columns", default=None, help="Comma-separated numeric columns (default: all numeric)."
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML SPOT config (e.g. best_config.yaml from `dmsec spot tune`).",
)
@click.option(
    "--posterior",
    "posterior_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of a skeleton posterior built by `build-posterior` (default: packaged).",
)
@click.option(
    "--standardize/--no-standardize",
    default=True,
    show_default=True,
    help="Unit-variance columns (tables mix units; the least-squares score is not scale-free).",
)
@click.option("--unguided", is_flag=True, help="Ignore the posterior (plain ABIC) for comparison.")
@click.option("--seed", default=0, show_default=True, type=int)
def run(
    data: Path,
    out: Path,
    columns: str | None,
    config_path: Path | None,
    posterior_dir: Path | None,
    standardize: bool,
    unguided: bool,
    seed: int,
) -> None:
    """Learn a PAG over the numeric columns of DATA (Parquet) and write it to --out."""
    import dataclasses

    import numpy as np

    from dmsec.causal import spot as spot_lib
    from dmsec.causal.posterior import load_posterior
    from dmsec.causal.table import read_numeric_table, write_graph

    X, names = read_numeric_table(data, columns.split(",") if columns else None)
    config = _load_config(config_path)
    learner = dataclasses.replace(config.learner, standardize=standardize, seed=seed)
    config = dataclasses.replace(config, learner=learner)
    if unguided:
        result = spot_lib.unguided(X, config)
        S, posterior_info = None, None
    else:
        model = load_posterior(posterior_dir)
        result = spot_lib.spot(X, config, model)
        S, posterior_info = result.extra["posterior"], model.manifest.get("config_hash")
    info: dict[str, Any] = {
        "data": str(data),
        "rows": int(X.shape[0]),
        "method": "unguided" if unguided else "spot",
        "config": spot_lib.spot_config_to_dict(config),
        "posterior_config_hash": posterior_info,
        "seconds": round(result.seconds, 3),
        "constraint_h": result.h,
        "versions": _versions(),
    }
    path = write_graph(out, names, result.pag, result.mag, S, info)
    n_edges = int(np.sum(result.pag != 0) // 2)
    click.echo(f"{n_edges} edges over {len(names)} columns in {result.seconds:.1f}s -> {path}")


@spot.command("tune")
@click.option(
    "--out",
    "out",
    default=Path("results/spot_tune"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML tune config (keys of pipelines.spot_tune.TuneConfig).",
)
@click.option("--trials", default=None, type=int, help="Number of sampled configurations.")
@click.option("--quick", is_flag=True, help="Tiny search for a smoke test.")
def tune(out: Path, config_path: Path | None, trials: int | None, quick: bool) -> None:
    """Ray Tune search over SPOT's hyper-parameters on held-out synthetic graphs."""
    module = load_tune_pipeline()
    raw = _read_yaml(config_path) if config_path else {}
    if trials is not None:
        raw["num_trials"] = trials
    config = module.TuneConfig.quick(**raw) if quick else module.TuneConfig(**raw)
    best = module.run_tune(config, out)
    click.echo(f"best {best['metric']}={best['value']:.4f}; config -> {best['config_path']}")


@spot.command("build-posterior")
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for skeleton_posterior.{npz,json} (default: the cache, keyed by config hash).",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML training config (keys of PosteriorTrainingConfig).",
)
def build_posterior_command(out: Path | None, config_path: Path | None) -> None:
    """Train the skeleton posterior on simulated graphs and save it without pickle."""
    import logging

    from dmsec.causal.posterior import cache_dir
    from dmsec.causal.posterior_train import PosteriorTrainingConfig, build_posterior

    logging.getLogger("dmsec.causal").setLevel(logging.INFO)
    raw = _read_yaml(config_path) if config_path else {}
    raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    config = PosteriorTrainingConfig(**raw)
    posterior = build_posterior(config)
    target = out or cache_dir() / config.config_hash()
    posterior.save(target)
    aucs = ", ".join(f"{a:.4f}" for a in posterior.manifest["heldout_auc_per_stage"])
    click.echo(f"held-out AUC per stage: {aucs}; saved to {target}")


def _load_config(path: Path | None) -> Any:
    from dmsec.causal.spot import SPOTConfig, spot_config_from_dict

    if path is None:
        return SPOTConfig()
    return spot_config_from_dict(_read_yaml(path))


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise click.BadParameter(f"{path} must hold a mapping; got {type(raw).__name__}")
    return raw


def load_tune_pipeline() -> Any:
    """The Ray Tune job (`dmsec_pipelines.spot_tune`), from the Ray job table."""
    from dmsec.jobs import ray_job

    return ray_job("spot_tune")


def _versions() -> dict[str, str]:
    import numpy
    import torch

    import dmsec

    return {
        "dmsec": dmsec.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
    }
