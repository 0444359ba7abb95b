"""`dmsec hub`: list checkpoints a source holds, and pull them safely into the cache.

    dmsec hub list SOURCE_URI [--kind lora] [--base-model NAME] [--since 2025-01-01]
    dmsec hub pull SOURCE_URI [filters] [--cache-dir DIR] [--allow-pickle] [--max-file-bytes 2GiB]

SOURCE_URI: a local path or file://..., hf://[author][?search=..&tag=..], civitai://[?query=..],
s3://bucket/prefix. `--endpoint` (or HF_ENDPOINT, DMSEC_CIVITAI_ENDPOINT, AWS_ENDPOINT_URL)
points a source at another server. Tokens come from HF_TOKEN / CIVITAI_API_KEY only.
Output is one JSON object per line. With `--ledger` and `--config-hash`, `list` shows only
checkpoints not yet recorded and `pull` records each pull's status.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import click

from dmsec.errors import ConfigError, DmsecError
from dmsec.hub.ledger import Ledger
from dmsec.hub.pull import Puller
from dmsec.hub.pull_policy import PullPolicy
from dmsec.hub.ref import KINDS, CheckpointRef
from dmsec.hub.source import HubSource, ListFilter, source_from_uri, source_names

_ENDPOINT_OPTION = {"hf": "endpoint", "civitai": "endpoint", "s3": "endpoint_url"}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from "1024", "512KiB", "8GiB", "2G" (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise click.BadParameter(f"expected a size like 512MiB or 8GiB; got {text!r}")
    unit = (match.group(2) or "B").upper()[0]
    return int(match.group(1)) * 1024 ** "BKMGT".index(unit)


def parse_since(text: str | None) -> datetime | None:
    """An ISO date or datetime; naive values are UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected an ISO date like 2025-01-31; got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_source(uri: str, endpoint: str | None) -> HubSource:
    """The source for `uri`, with `endpoint` passed under the option name that source uses."""
    options: dict[str, Any] = {}
    if endpoint:
        scheme = urlsplit(uri).scheme if "://" in uri else "file"
        if scheme not in _ENDPOINT_OPTION:
            raise click.UsageError(f"--endpoint does not apply to {uri!r}")
        options[_ENDPOINT_OPTION[scheme]] = endpoint
    return source_from_uri(uri, **options)


def _emit(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, sort_keys=True, default=str))


def _filter_options(fn: Any) -> Any:
    fn = click.option("--endpoint", help="API endpoint / S3 endpoint URL of the source.")(fn)
    fn = click.option("--limit", type=click.IntRange(min=1), help="Stop after N checkpoints.")(fn)
    fn = click.option("--since", help="Only checkpoints modified at/after this ISO date.")(fn)
    fn = click.option("--base-model", "base_models", multiple=True, help="Wanted base model.")(fn)
    fn = click.option(
        "--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Default: full, lora."
    )(fn)
    fn = click.option("--ledger", help="Ledger Parquet path; needs --config-hash.")(fn)
    fn = click.option("--config-hash", help="Scan config hash the ledger is keyed by.")(fn)
    return fn


def _listing(
    source: HubSource,
    kinds: tuple[str, ...],
    base_models: tuple[str, ...],
    since: str | None,
    limit: int | None,
    ledger: str | None,
    config_hash: str | None,
) -> tuple[Iterator[CheckpointRef], Ledger | None]:
    if (ledger is None) != (config_hash is None):
        raise click.UsageError("--ledger and --config-hash go together")
    flt = ListFilter(
        kinds=frozenset(kinds) if kinds else ListFilter().kinds,
        base_models=frozenset(base_models) if base_models else None,
        since=parse_since(since),
        limit=limit,
    )
    refs = source.list(flt)
    book = Ledger(ledger) if ledger else None
    if book is not None and config_hash is not None:
        refs = book.pending(refs, config_hash)
    return refs, book


@click.group()
def hub() -> None:
    """List and safely pull checkpoints from model hubs (local, hf, civitai, s3)."""


@hub.command("sources")
def sources_cmd() -> None:
    """Print the names of the known hub sources."""
    for name in source_names():
        click.echo(name)


@hub.command("list")
@click.argument("source_uri")
@_filter_options
def list_cmd(source_uri: str, endpoint: str | None, **kw: Any) -> None:
    """List the checkpoints SOURCE_URI holds, one JSON object per line."""
    try:
        refs, _ = _listing(build_source(source_uri, endpoint), **kw)
        for ref in refs:
            _emit(ref.to_dict())
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None


@hub.command("pull")
@click.argument("source_uri")
@_filter_options
@click.option("--repo-id", help="Pull this one checkpoint instead of listing.")
@click.option("--revision", help="With --repo-id: this revision (default newest).")
@click.option("--cache-dir", help="Cache root (default $DMSEC_HUB_CACHE or ~/.cache/dmsec/hub).")
@click.option("--allow-pickle", is_flag=True, help="Allow scanned pickle weights (risky).")
@click.option("--max-file-bytes", default="8GiB", show_default=True, help="Per-file cap.")
@click.option(
    "--max-checkpoint-bytes", default="16GiB", show_default=True, help="Per-checkpoint cap."
)
@click.option("--fail-on-error", is_flag=True, help="Exit 1 when any checkpoint is not pulled.")
def pull_cmd(
    source_uri: str,
    endpoint: str | None,
    repo_id: str | None,
    revision: str | None,
    cache_dir: str | None,
    allow_pickle: bool,
    max_file_bytes: str,
    max_checkpoint_bytes: str,
    fail_on_error: bool,
    **kw: Any,
) -> None:
    """Pull checkpoints into the cache; print one result (path or error) per line."""
    try:
        policy = PullPolicy(
            max_file_bytes=parse_size(max_file_bytes),
            max_checkpoint_bytes=parse_size(max_checkpoint_bytes),
            allow_pickle=allow_pickle,
        )
        source = build_source(source_uri, endpoint)
        if repo_id is not None:
            refs: Iterator[CheckpointRef] = iter([source.get(repo_id, revision)])
            book = Ledger(kw["ledger"]) if kw["ledger"] else None
        else:
            refs, book = _listing(source, **kw)
        puller = Puller(cache_dir, policy)
        bad = 0
        for result in puller.pull_all(source, refs):
            bad += not result.ok
            if book is not None and kw["config_hash"]:
                book.mark(result.ref, kw["config_hash"], result.status)
            _emit(
                {
                    "source": result.ref.source,
                    "repo_id": result.ref.repo_id,
                    "revision": result.ref.revision,
                    "kind": result.ref.kind,
                    "status": result.status,
                    "path": str(result.path) if result.path else None,
                    "error": result.error,
                }
            )
    except (DmsecError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    if fail_on_error and bad:
        sys.exit(1)
