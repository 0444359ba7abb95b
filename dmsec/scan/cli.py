"""`dmsec scan`: scan a hub for checkpoints that leak protected artwork.

    dmsec scan [--config configs/scan.yaml] [--source URI] [--registry LOC] [--out DIR] [--set k=v]

With no options it runs the embedded default: the small tiny zoo as a local hub, a registry of
its protected images (built in `<out>/registry` if missing), local Ray, results in ./results; it
prints a line per checkpoint, the summary table and where the report is.
"""

from __future__ import annotations

import json

import click

from dmsec.errors import DmsecError


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Scan config YAML (default: the embedded default, see configs/scan.yaml).")  # fmt: skip
@click.option("--source", default=None, help="Hub to scan (sets source.uri): a path, hf://, civitai://, s3://, zoo:small.")  # fmt: skip
@click.option("--registry", default=None, help="Protected-artwork registry folder (sets registry.location).")  # fmt: skip
@click.option("--out", default=None, help="Results folder (sets results.out).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set extract.n_samples=64 (repeatable).")  # fmt: skip
@click.option("--local", is_flag=True, help="Run the stages in this process instead of on Ray.")
def scan(config_path: str | None, source: str | None, registry: str | None, out: str | None,
         overrides: tuple[str, ...], local: bool) -> None:  # fmt: skip
    """Scan a hub for checkpoints that leak protected artwork; write Parquet findings."""
    from dmsec.scan.config import load_scan_config
    from dmsec.scan.runner import run_scan

    sets = list(overrides)
    for key, value in (("source.uri", source), ("registry.location", registry), ("results.out", out)):  # fmt: skip
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    if local:
        sets.append("run.executor=local")
    try:
        config = load_scan_config(config_path, sets)
        summary = run_scan(config, echo=click.echo)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("")
    click.echo(summary.table())
