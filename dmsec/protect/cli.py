"""`dmsec protect IN_DIR --out OUT_DIR --base MODEL`: protect a folder of artworks with AdvDM.

Runs in this process. `pipelines/protect.py` takes the very same arguments (`job_options`) and runs
the job on Ray Data over an actor pool (a GPU per actor when the cluster has them).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import click

from dmsec.protect.advdm import PAPER_EPS, PAPER_STEPS


class Budget(click.ParamType):
    """A pixel budget on the [0, 1] scale, given as a float or a fraction ("8/255")."""

    name = "budget"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return float(Fraction(str(value).strip()))
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number or fraction like 8/255", param, ctx)


BUDGET = Budget()

# option name -> (path in ProtectJobConfig.from_dict's data: top level or under "advdm")
_ADVDM_OPTIONS = ("eps", "alpha", "steps", "condition", "seed", "draws")
_JOB_OPTIONS = ("batch_size", "num_actors", "device", "registry", "owner", "max_pixels")


def job_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a protection job, shared by `dmsec protect` and `pipelines/protect.py`."""
    options = [
        click.argument("in_dir", type=click.Path(exists=True, file_okay=False)),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
                     help="Output folder (mirrors IN_DIR; manifest.parquet, protect.json)."),
        click.option("--base", type=click.Path(exists=True), required=True,
                     help="The model to protect against (diffusers folder or zoo base)."),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                     default=None, help="YAML job config; options given here override it."),
        click.option("--eps", type=BUDGET, default=PAPER_EPS, show_default="16/255",
                     help="L∞ budget on the [0, 1] scale, e.g. 8/255."),
        click.option("--alpha", type=BUDGET, default=None, help="PGD step (default: eps/16)."),
        click.option("--steps", type=int, default=PAPER_STEPS, show_default=True),
        click.option("--condition", default=None,
                     help="Class id or prompt the loss uses (default: ∅, the null class / empty "
                          "prompt); the paper uses a generic prompt such as 'a painting'."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--draws", type=int, default=1, show_default=True,
                     help="(t, ε) draws averaged per PGD step."),
        click.option("--batch-size", type=int, default=8, show_default=True,
                     help="Images per PGD batch."),
        click.option("--num-actors", type=int, default=1, show_default=True,
                     help="Ray actors (pipelines/protect.py only)."),
        click.option("--device", default=None, help="cpu, cuda ... (default: CUDA if present)."),
        click.option("--registry", default=None,
                     help="Register the originals in this protected-artwork registry."),
        click.option("--owner", default=None, help="Rights holder (required with --registry)."),
        click.option("--max-pixels", type=int, default=40_000_000, show_default=True,
                     help="Refuse larger input images (decompression-bomb limit)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def config_from_options(ctx: click.Context, **values: Any) -> Any:
    """A `ProtectJobConfig` from the YAML file (if any) overridden by options given explicitly."""
    from dmsec.config import read_yaml
    from dmsec.protect.job import ProtectJobConfig

    data: dict[str, Any] = read_yaml(values["config_file"]) if values.get("config_file") else {}
    advdm = dict(data.get("advdm") or {})

    def given(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is not None and source.name != "DEFAULT"

    data.update(in_dir=values["in_dir"], out_dir=values["out_dir"], base=values["base"])
    for name in _JOB_OPTIONS:
        if given(name) or name not in data:
            data[name] = values[name]
    for name in _ADVDM_OPTIONS:
        if given(name) or name not in advdm:
            value = values[name]
            advdm[name] = _parse_condition(value) if name == "condition" else value
    data["advdm"] = advdm
    return ProtectJobConfig.from_dict(data)


def _parse_condition(value: str | int | None) -> int | str | None:
    if value is None or isinstance(value, int):
        return value
    return int(value) if value.lstrip("-").isdigit() else value


@click.command()
@job_options
@click.pass_context
def protect(ctx: click.Context, **values: Any) -> None:
    """Protect every image in IN_DIR against imitation by models like --base (AdvDM)."""
    from dmsec.errors import DmsecError
    from dmsec.protect.job import error_sources, run_local, summarise

    try:
        config = config_from_options(ctx, **values)
        manifest = run_local(config)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    for source, error in error_sources(manifest):
        click.echo(f"error {source}: {error}", err=True)
    click.echo(summarise(manifest))
    click.echo(f"manifest -> {Path(config.out_dir) / 'manifest.parquet'}")
