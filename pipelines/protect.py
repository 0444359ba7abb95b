"""Ray Data job: protect a folder of artworks with AdvDM on an actor pool.

    python pipelines/protect.py IN_DIR --out OUT_DIR --base MODEL [--eps 8/255 ...] \
        [--num-actors 4] [--address auto] [--registry REG --owner NAME]

Same arguments and outputs as `dmsec protect` (see `dmsec.protect.cli.job_options`): the output
folder mirrors IN_DIR with one protected PNG per image, plus `manifest.parquet` (one row per input,
errors included) and `protect.json` (resolved config, versions, counts).

Shape: the driver lists the files and plans output names; `map_batches` runs
`dmsec.protect.step.ProtectStep` (model loaded once per actor) on a pool of `num_actors` actors,
each with one GPU when the cluster has GPUs, one CPU otherwise; every actor writes its PNGs
directly to OUT_DIR (a shared file system), and returns manifest rows, which the driver streams
back (progress bar), then registers the originals (one registry writer) and writes the manifest.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import click
import pyarrow as pa
import ray

from dmsec.progress import progress as progress_bar
from dmsec.protect.cli import config_from_options, job_options
from dmsec.protect.job import (
    ProtectJobConfig,
    error_sources,
    finish_job,
    plan_sources,
    summarise,
)
from dmsec.protect.step import MANIFEST_SCHEMA, ProtectStep, rows_to_table

log = logging.getLogger(__name__)


def actor_resources(config: ProtectJobConfig) -> dict[str, float]:
    """One GPU per actor when the cluster has GPUs (and no CPU device was forced), else one CPU."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus >= 1 and (config.device is None or config.device.startswith("cuda")):
        return {"num_gpus": 1}
    return {"num_cpus": 1}


def run(config: ProtectJobConfig, progress: bool = True) -> pa.Table:
    """Run the job on the current Ray cluster (`ray.init` first); returns the manifest."""
    started = time.perf_counter()
    sources, collisions = plan_sources(config.in_dir)
    tables = [rows_to_table(collisions)]
    if sources:
        resources = actor_resources(config)
        log.info(
            "protecting %d images on %d actors (%s)", len(sources), config.num_actors, resources
        )
        ds = ray.data.from_items([{"source": s} for s in sources])
        ds = ds.map_batches(
            ProtectStep,
            fn_constructor_args=(config.in_dir, config.out_dir, config.base, config.advdm),
            fn_constructor_kwargs={
                "method": config.method,
                "device": config.device,
                "limits": config.limits,
                "job_seed": config.advdm.seed,
            },
            batch_size=config.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=config.num_actors),
            **resources,
        )
        bar = progress_bar(total=len(sources), desc="protect", unit="img", enabled=progress)
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            tables.append(batch.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA))
            bar.update(batch.num_rows)
        bar.close()
    return finish_job(config, pa.concat_tables(tables), started, runner=f"ray {ray.__version__}")


@click.command()
@job_options
@click.option("--address", default=None, help="Ray cluster address (default: start a local Ray).")
@click.pass_context
def main(ctx: click.Context, address: str | None, **values: Any) -> None:
    """Protect every image in IN_DIR against imitation by models like --base (AdvDM, Ray Data)."""
    from dmsec.errors import DmsecError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_options(ctx, **values)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    ray.init(address=address)
    manifest = run(config)
    for source, error in error_sources(manifest):
        click.echo(f"error {source}: {error}", err=True)
    click.echo(summarise(manifest))
    click.echo(f"manifest -> {config.out_dir}/manifest.parquet")


if __name__ == "__main__":
    main()
