"""`dmsec index`: manage the protected-artwork registry from the command line.

The registry location comes from ``--registry`` or ``DMSEC_REGISTRY`` (default ``./registry``),
a local folder or ``s3://bucket/prefix`` (S3-compatible servers via ``--endpoint-url`` or
``DMSEC_S3_ENDPOINT_URL``). ``add`` creates the registry on first use, with the embedders named
by ``--embedder`` or else the one that fits the images (`dmsec.match.choice`), said once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from dmsec.errors import DmsecError
from dmsec.images import DecodeLimits, decode_untrusted_image, decode_untrusted_images
from dmsec.match.choice import EmbedderChoiceError, choose_embedders
from dmsec.match.embedder import create_embedder
from dmsec.match.index_policy import IndexPolicy
from dmsec.match.registry import ProtectedArtworkIndex
from dmsec.match.registry_records import AddReport, hits_to_table
from dmsec.progress import progress as progress_bar

F = TypeVar("F", bound=Callable[..., Any])


def _registry_options(func: F) -> F:
    func = click.option(
        "--endpoint-url",
        envvar="DMSEC_S3_ENDPOINT_URL",
        default=None,
        help="S3-compatible endpoint, e.g. http://127.0.0.1:9000.",
    )(func)
    func = click.option(
        "--model-path",
        "model_paths",
        multiple=True,
        metavar="NAME=PATH",
        help="Local weights of a dense embedder, e.g. dinov2=/models/dinov2-small.",
    )(func)
    return click.option(
        "--registry",
        envvar="DMSEC_REGISTRY",
        default="registry",
        show_default=True,
        help="Registry folder or s3://bucket/prefix (env DMSEC_REGISTRY).",
    )(func)


def _parse_model_paths(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(
                f"expected NAME=PATH; got {value!r}", param_hint="--model-path"
            )
        out[name] = path
    return out


def _open(
    registry: str, endpoint_url: str | None, model_paths: Sequence[str]
) -> ProtectedArtworkIndex:
    try:
        return ProtectedArtworkIndex.open(
            registry, endpoint_url=endpoint_url, model_paths=_parse_model_paths(model_paths)
        )
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None


def _open_or_create(
    registry: str,
    endpoint_url: str | None,
    model_paths: Sequence[str],
    embedders: Sequence[str],
    approximate_above: int | None,
    files: Sequence[Path] = (),
) -> ProtectedArtworkIndex:
    paths_by_name = _parse_model_paths(model_paths)
    if ProtectedArtworkIndex.exists(registry, endpoint_url=endpoint_url):
        idx = ProtectedArtworkIndex.open(
            registry, endpoint_url=endpoint_url, model_paths=paths_by_name
        )
        if embedders and list(embedders) != idx.embedder_names:
            raise click.ClickException(
                f"registry {registry} already uses embedders {idx.embedder_names}; "
                "--embedder only applies when creating one"
            )
        return idx
    chosen = [
        create_embedder(n, {"model_path": paths_by_name[n]} if n in paths_by_name else {})
        for n in (embedders or _fitting_embedders(files))
    ]
    return ProtectedArtworkIndex.create(
        registry,
        chosen,
        policy=IndexPolicy(approximate_above=approximate_above),
        endpoint_url=endpoint_url,
    )


def _fitting_embedders(files: Sequence[Path]) -> tuple[str, ...]:
    """The embedder that fits the readable images among `files`, said once on stderr; a
    `ClickException` naming which `--embedder` to pass when none fits."""
    limits = DecodeLimits()

    def readable() -> Iterable[Any]:
        for i, path in enumerate(files):
            try:
                yield decode_untrusted_image(path, i, limits).pixels
            except DmsecError:
                continue  # reported as an error row when the file is added

    try:
        choice = choose_embedders(readable())
    except EmbedderChoiceError as exc:
        flags = " or ".join(f"--embedder {c}" for c in exc.candidates)
        raise click.ClickException(
            f"cannot choose an embedder for the new registry: {exc}; pass {flags} "
            "(--embedder may be given several times)"
        ) from None
    click.echo(
        f"new registry: embedder {', '.join(choice.names)} for {choice.reason} "
        "(--embedder overrides)",
        err=True,
    )
    return choice.names


def _expand(paths: Iterable[Path]) -> list[Path]:
    """Files named, and every file under folders named (sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        else:
            out.append(path)
    return out


@click.group()
def index() -> None:
    """Manage the protected-artwork registry (add, remove, search, stats, rebuild)."""


@index.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--owner", required=True, help="Rights holder of these artworks.")
@click.option("--title", default=None, help="Title for every file (default: each file's name).")
@click.option("--source-uri", default=None, help="Source URI for every file (default: its path).")
@click.option(
    "--embedder",
    "embedders",
    multiple=True,
    help="Embedders of a new registry (default: the one that fits the images: pdq for "
    "artwork-size images, art for small colour ones, zoo for small grey ones).",
)
@click.option(
    "--approximate-above", type=int, default=None, help="New registry: HNSW/IVF above this size."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_registry_options
def add(
    paths: tuple[Path, ...],
    owner: str,
    title: str | None,
    source_uri: str | None,
    embedders: tuple[str, ...],
    approximate_above: int | None,
    as_json: bool,
    registry: str,
    model_paths: tuple[str, ...],
    endpoint_url: str | None,
) -> None:
    """Add image files (or folders of them) to the registry, creating it if needed."""
    files = _expand(paths)
    try:
        idx = _open_or_create(registry, endpoint_url, model_paths, embedders, approximate_above, files)  # fmt: skip
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    report = AddReport()
    # a bar on a terminal; in a log, a line per chunk added (and, without --json, the chunk's
    # files at once, not all of them at the end)
    bar = progress_bar(total=len(files), desc="index add", unit="file")
    for start in range(0, len(files), ADD_CHUNK):
        try:
            part = idx.add(files[start : start + ADD_CHUNK], owner=owner, title=title, source_uri=source_uri)  # fmt: skip
        except DmsecError as exc:
            raise click.ClickException(str(exc)) from None
        if not as_json:
            _echo_added(part)
        report.added += part.added
        report.duplicates += part.duplicates
        report.errors += part.errors
        bar.update(len(files[start : start + ADD_CHUNK]))
    bar.close()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "added": [{"id": a.artwork_id, "path": a.source} for a in report.added],
                    "duplicates": [
                        {"path": d.source, "existing_id": d.existing_id, "reason": d.reason}
                        for d in report.duplicates
                    ],
                    "errors": [{"path": e.source, "reason": e.reason} for e in report.errors],
                },
                indent=2,
            )
        )
    if report.errors:
        sys.exit(1)


#: files per `add` call of `dmsec index add` (each call commits the registry once)
ADD_CHUNK = 256


def _echo_added(report: AddReport) -> None:
    for a in report.added:
        click.echo(f"added {a.artwork_id}\t{a.source}")
    for d in report.duplicates:
        click.echo(f"duplicate\t{d.source}\tof {d.existing_id} ({d.reason})")
    for e in report.errors:
        click.echo(f"error\t{e.source}\t{e.reason}", err=True)


@index.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@_registry_options
def remove(
    ids: tuple[int, ...], registry: str, model_paths: tuple[str, ...], endpoint_url: str | None
) -> None:
    """Remove artworks by id."""
    idx = _open(registry, endpoint_url, model_paths)
    try:
        removed = idx.remove(list(ids))
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed {', '.join(map(str, removed))}")


@index.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--embedder", default=None, help="Embedder to search with (default: the first).")
@click.option(
    "--threshold", type=float, default=None, help="Match threshold (default: calibrated)."
)
@click.option("-k", "--top-k", "k", type=int, default=None, help="Return the k nearest instead.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON lines.")
@_registry_options
def search(
    images: tuple[Path, ...],
    embedder: str | None,
    threshold: float | None,
    k: int | None,
    as_json: bool,
    registry: str,
    model_paths: tuple[str, ...],
    endpoint_url: str | None,
) -> None:
    """Search the registry for matches of image files."""
    idx = _open(registry, endpoint_url, model_paths)
    decoded, errors = decode_untrusted_images(list(images), idx.limits)
    for e in errors:
        click.echo(f"error\t{e.source}\t{e.reason}", err=True)
    try:
        hits = idx.search([d.pixels for d in decoded], embedder=embedder, threshold=threshold, k=k)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    meta = {row["id"]: row for row in idx.artworks().select(["id", "owner", "title"]).to_pylist()}
    for row in hits_to_table(hits).to_pylist():
        query = decoded[row["query_index"]].source
        artwork = meta[row["artwork_id"]]
        if as_json:
            click.echo(
                json.dumps(
                    {**row, "query": query, **{k2: artwork[k2] for k2 in ("owner", "title")}}
                )
            )
        else:
            click.echo(
                f"{query}\t{row['artwork_id']}\t{artwork['owner']}\t{artwork['title']}\t"
                f"{row['embedder']}\t{row['score']:.4g}"
            )
    if not hits and not as_json:
        click.echo("no match", err=True)
    if errors:
        sys.exit(1)


@index.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_registry_options
def stats(
    as_json: bool, registry: str, model_paths: tuple[str, ...], endpoint_url: str | None
) -> None:
    """Counts, index kinds and sizes."""
    s = _open(registry, endpoint_url, model_paths).stats()
    if as_json:
        click.echo(json.dumps(s.to_dict(), indent=2))
        return
    click.echo(f"{s.location}: {s.artworks} artworks from {s.owners} owners (next id {s.next_id})")
    for e in s.embedders:
        note = "  (rebuild recommended)" if e.rebuild_recommended else ""
        click.echo(
            f"  {e.name:8s} {e.metric:13s} dim={e.dim:<5d} {e.kind:9s} codes={e.codes} "
            f"stale={e.stale} bytes={e.index_bytes}{note}"
        )


@index.command()
@click.option("--approximate-above", type=int, default=None, help="HNSW/IVF above this size.")
@click.option("--exact", is_flag=True, help="Exact indexes at every size.")
@_registry_options
def rebuild(
    approximate_above: int | None,
    exact: bool,
    registry: str,
    model_paths: tuple[str, ...],
    endpoint_url: str | None,
) -> None:
    """Rebuild every FAISS index from artworks.parquet (drops stale codes, re-picks kinds)."""
    idx = _open(registry, endpoint_url, model_paths)
    policy = idx.policy
    if exact or approximate_above is not None:
        from dataclasses import replace

        policy = replace(policy, approximate_above=None if exact else approximate_above)
    idx.rebuild(policy)
    click.echo(f"rebuilt {', '.join(f'{e.name}={e.kind}' for e in idx.stats().embedders)}")
