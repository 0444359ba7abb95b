"""`dmsec zoo build|list|path`: the tiny model zoo from the command line."""

from __future__ import annotations

import click

from dmsec.zoo.config import PRESETS


@click.group()
def zoo() -> None:
    """Build and inspect the tiny model zoo (trained here on scikit-learn's digits)."""


@zoo.command()
@click.option("--small", is_flag=True, help="The small test config (<= 6 min on 2 cores).")
@click.option("--force", is_flag=True, help="Rebuild even when a cached build exists.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Default: $DMSEC_CACHE or ~/.cache/dmsec.",
)
@click.option("--device", default="cpu", show_default=True, help="Where to train (cpu, cuda).")
def build(small: bool, force: bool, cache_dir: str | None, device: str) -> None:
    """Train (or reuse) the zoo and print where it is."""
    from dmsec.zoo.build import build_zoo

    z = build_zoo("small" if small else "full", cache_dir=cache_dir, force=force, device=device)
    _print_zoo(z)


@zoo.command(name="list")
@click.option("--small", is_flag=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
def list_(small: bool, cache_dir: str | None) -> None:
    """List the checkpoints of a built zoo."""
    from dmsec.zoo.build import Zoo, zoo_dir

    _print_zoo(Zoo(zoo_dir(PRESETS["small" if small else "full"], cache_dir)))


def _print_zoo(z: object) -> None:
    from dmsec.zoo.build import Zoo

    assert isinstance(z, Zoo)
    click.echo(f"zoo: {z.root} (built in {z.manifest['build_seconds']:.0f} s)")
    click.echo(f"{'checkpoint':<26}{'kind':<6}{'strength':<9}{'protected':<10}{'steps':>6}")
    for e in z.entries:
        click.echo(
            f"{e.name:<26}{e.kind:<6}{e.strength or '-':<9}{str(e.protected):<10}{e.train_steps:>6}"
        )
