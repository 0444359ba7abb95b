"""`dmsec spot`: causal discovery on a Parquet table, its hyper-parameter search, its posterior.

dmsec spot DATA.parquet --out GRAPH.json       # SPOT on the numeric columns (same as `run`)
dmsec spot DATA.parquet --out G.json --max-seconds 60   # within a wall budget
dmsec spot DATA.parquet --out G.json --skeleton-only    # the posterior's skeleton alone
dmsec spot tune --out DIR                      # Ray Tune search (pipelines/spot_tune.py)
dmsec spot build-posterior --out DIR           # retrain the skeleton posterior
"""

from __future__ import annotations

import platform
import sys
import time
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
      dmsec spot DATA.parquet --out G.json --max-seconds 60    ... within a wall budget
      dmsec spot DATA.parquet --out G.json --skeleton-only     the posterior's skeleton alone
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
@click.option(
    "--max-seconds",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Wall budget in seconds, counted once the program has loaded (reading the table and "
    "the posterior included); the learner stops at it with what it has and the output's "
    "`timed_out` says so. Default: none (or the config's learner.max_seconds).",
)
@click.option(
    "--skeleton-only",
    is_flag=True,
    help="Write only the skeleton posterior's adjacencies S > --cut (o-o edges, no learner).",
)
@click.option(
    "--cut",
    default=None,
    type=click.FloatRange(0, 1, max_open=True),
    help="Posterior cut of --skeleton-only (default: the config's `cut`).",
)
@click.option(
    "--keep-cut",
    default=None,
    type=click.FloatRange(0, 1, max_open=True),
    help="Pairs with S above it stay adjacent in the learned graph (default: the config's).",
)
@click.option(
    "--skeleton",
    "skeleton",
    default=None,
    type=click.Choice(["posterior", "union", "learner"]),
    help="The PAG's skeleton: the posterior's S > cut with the learned marks (default), that "
    "plus the learner's extra pairs, or the learner's own (default: the config's `skeleton`).",
)
@click.option("--seed", default=0, show_default=True, type=int)
def run(
    data: Path,
    out: Path,
    columns: str | None,
    config_path: Path | None,
    posterior_dir: Path | None,
    standardize: bool,
    unguided: bool,
    max_seconds: float | None,
    skeleton_only: bool,
    cut: float | None,
    keep_cut: float | None,
    skeleton: str | None,
    seed: int,
) -> None:
    """Learn a PAG over the numeric columns of DATA (Parquet) and write it to --out.

    The output records the budget, whether the run stopped at it (`timed_out`) and the seconds
    of each stage. Progress: a bar on a terminal, otherwise one plain line per stage on stderr.
    """
    import dataclasses

    import numpy as np

    from dmsec.causal import spot as spot_lib
    from dmsec.causal.table import read_numeric_table, write_graph

    if skeleton_only and unguided:
        raise click.UsageError("--skeleton-only and --unguided exclude each other")
    if cut is not None and not skeleton_only:
        raise click.UsageError("--cut applies to --skeleton-only (the learner's cut is `cut` in --config)")  # fmt: skip
    # loading the program, not running it: imported before the budget's clock starts
    import pyarrow.parquet  # noqa: F401
    import scipy.optimize  # noqa: F401

    progress = _StageProgress(["read", "learn"] if unguided else ["read", "posterior", "learn"])
    started = time.perf_counter()
    X, names = read_numeric_table(data, columns.split(",") if columns else None)
    progress.done("read", f"{X.shape[0]} rows x {X.shape[1]} columns")
    config = _load_config(config_path)
    learner = dataclasses.replace(config.learner, standardize=standardize, seed=seed)
    config = dataclasses.replace(config, learner=learner)
    if keep_cut is not None:
        try:
            config = dataclasses.replace(config, keep_cut=keep_cut)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--keep-cut") from None
    if skeleton is not None:
        config = dataclasses.replace(config, skeleton=skeleton)
    info: dict[str, Any] = {
        "data": str(data),
        "rows": int(X.shape[0]),
        "method": "skeleton-only" if skeleton_only else "unguided" if unguided else "spot",
        "config": spot_lib.spot_config_to_dict(config),
        "max_seconds": max_seconds,
        "stage_seconds": {"read": round(time.perf_counter() - started, 3)},
    }
    deadline = None if max_seconds is None else started + max_seconds

    def left() -> float | None:
        """Seconds of the budget still left (None: no budget)."""
        return None if deadline is None else max(deadline - time.perf_counter(), 1e-3)

    if skeleton_only:
        pag, mag, S, timed_out = _skeleton_only(X, posterior_dir, cut if cut is not None else config.cut, deadline, info, progress)  # fmt: skip
        progress.skip("learn")
    elif unguided:
        budget = left()
        if budget is not None:
            config = dataclasses.replace(config, learner=dataclasses.replace(config.learner, max_seconds=budget))  # fmt: skip
        result = spot_lib.unguided(X, config)
        pag, mag, S, timed_out = result.pag, result.mag, None, bool(result.extra["timed_out"])
        info.update(posterior_config_hash=None, constraint_h=result.h)
        info["stage_seconds"]["learner"] = round(result.seconds, 3)
        progress.done("learn", _learn_note(result.seconds, timed_out))
    else:
        from dmsec.causal.posterior import load_posterior

        model = load_posterior(posterior_dir)
        result = spot_lib.spot(X, config, model, max_seconds=left())
        pag, mag, S = result.pag, result.mag, result.extra["posterior"]
        timed_out = bool(result.extra["timed_out"])
        info.update(posterior_config_hash=model.manifest.get("config_hash"), constraint_h=result.h)
        info["stage_seconds"]["posterior"] = round(result.extra["posterior_seconds"], 3)
        info["stage_seconds"]["learner"] = round(result.extra["learner_seconds"], 3)
        info["kept_pairs"] = int(np.sum(result.extra["keep"]) // 2) if result.extra["keep"] is not None else 0  # fmt: skip
        progress.done("posterior", f"{result.extra['posterior_seconds']:.1f}s")
        progress.done("learn", _learn_note(result.extra["learner_seconds"], timed_out))
    seconds = time.perf_counter() - started
    info.update(timed_out=timed_out, seconds=round(seconds, 3), versions=_versions())
    path = write_graph(out, names, pag, mag, S, info)
    progress.close()
    n_edges = int(np.sum(pag != 0) // 2)
    flag = " (stopped at the --max-seconds budget)" if timed_out else ""
    click.echo(f"{n_edges} edges over {len(names)} columns in {seconds:.1f}s{flag} -> {path}")


def _skeleton_only(
    X: Any,
    posterior_dir: Path | None,
    cut: float,
    deadline: float | None,
    info: dict[str, Any],
    progress: Any,
) -> tuple[Any, None, Any, bool]:
    """The thresholded posterior as an unoriented PAG (`skeleton.posterior_adjacency`); timed
    out when it was computed after the budget's `deadline` (``time.perf_counter`` seconds)."""
    from dmsec.causal.posterior import load_posterior
    from dmsec.causal.skeleton import posterior_adjacency, skeleton_pag

    t0 = time.perf_counter()
    model = load_posterior(posterior_dir)
    S = model(X)
    took = time.perf_counter() - t0
    info.update(posterior_config_hash=model.manifest.get("config_hash"), cut=cut)
    info["stage_seconds"]["posterior"] = round(took, 3)
    progress.done("posterior", f"{took:.1f}s")
    late = deadline is not None and time.perf_counter() > deadline
    return skeleton_pag(posterior_adjacency(S, cut)), None, S, late


def _learn_note(seconds: float, timed_out: bool) -> str:
    return f"{seconds:.1f}s" + (" (stopped at the budget)" if timed_out else "")


class _StageProgress:
    """The long-command log rule: a progress bar on a terminal, else one plain line per stage
    (``spot: <stage> done: <note>``) on stderr."""

    def __init__(self, stages: list[str]) -> None:
        self.bar: Any = None
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(stages), desc="spot", unit="stage")

    def done(self, stage: str, note: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{stage}: {note}")
            self.bar.update(1)
        else:
            click.echo(f"spot: {stage} done: {note}", err=True)

    def skip(self, stage: str) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
@click.option(
    "--method",
    default=None,
    type=click.Choice(["spot", "unguided"]),
    help="What to tune: SPOT (default) or the unguided baseline, with the same search budget.",
)
@click.option("--quick", is_flag=True, help="Tiny search for a smoke test.")
def tune(
    out: Path, config_path: Path | None, trials: int | None, method: str | None, quick: bool
) -> None:
    """Ray Tune search over SPOT's (or the unguided learner's) hyper-parameters on the tuning
    split's synthetic graphs."""
    module = load_tune_pipeline()
    raw = _read_yaml(config_path) if config_path else {}
    if trials is not None:
        raw["num_trials"] = trials
    if method is not None:
        raw["method"] = method
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
