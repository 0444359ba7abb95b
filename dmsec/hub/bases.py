"""The scan's base registry: which pretrained model a fine-tune is paired with, and where it is.

A fine-tune is scanned as a pair (its base, itself), and hubs name the base loosely: Civitai by
family ("SD 1.5", "Pony"), a README's `base_model` by a Hugging Face repo id, a kohya file by
whatever file the trainer had (`ss_sd_model_name`). The registry (`source.bases` in the scan
config) maps such names to a location, each entry reading `name=location`:

- `name`: the hub's exact string (case-insensitive), one of our family names ("sd1", "sdxl",
  ...: `dmsec.models.family`), or `*` for any checkpoint no other entry or source resolves;
- `location`: `hf://org/name@revision` (a Hugging Face repo at a pinned revision),
  `s3://bucket/key` (a folder or single file in a bucket), an absolute path or `file://` URI (a
  local folder or a single-file checkpoint), else a repo id in the scan's own source.

Lookup order: the hub's string, then the family; with no entry the hub's string is a repo id in
the scan's own source (a local hub holding its base), and `*` is tried when that fails. Every base is pulled through
the same `Puller` (caps, hashes, no pickles) as the checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dmsec.errors import ConfigError

ANY_BASE = "*"


@dataclass(frozen=True)
class BaseLocation:
    """Where a base model is: `source_uri` (None: the scan's own source), repo id, revision."""

    source_uri: str | None
    repo_id: str
    revision: str | None = None

    @property
    def key(self) -> str:
        """A string naming this location (one pull per worker per key)."""
        return f"{self.source_uri or ''}|{self.repo_id}@{self.revision or ''}"


def parse_location(location: str) -> BaseLocation:
    """A registry entry's location (see the module docstring); `ConfigError` names what is wrong."""
    text = location.strip()
    if text.startswith("hf://"):
        repo, _, revision = text[len("hf://") :].partition("@")
        if repo.count("/") != 1 or not all(repo.split("/")) or not revision:
            raise ConfigError(f"a Hugging Face base must read hf://org/name@revision (pinned); got {location!r}")  # fmt: skip
        return BaseLocation("hf://", repo, revision)
    if text.startswith("s3://"):
        bucket, _, key = text[len("s3://") :].partition("/")
        if not bucket or not key.strip("/"):
            raise ConfigError(f"an S3 base must read s3://bucket/key; got {location!r}")
        return BaseLocation(f"s3://{bucket}", f"{bucket}/{key.strip('/')}")
    if text.startswith("file://") or text.startswith("/"):
        path = Path(unquote(urlsplit(text).path) if text.startswith("file://") else text)
        if not path.is_absolute() or path.parent == path:
            raise ConfigError(f"a local base must be an absolute path below /; got {location!r}")
        return BaseLocation(str(path.parent), path.name)
    if not text or "://" in text:
        raise ConfigError(f"a base location must be hf://, s3://, an absolute path or a repo id; got {location!r}")  # fmt: skip
    return BaseLocation(None, text)


def parse_bases(entries: Sequence[str]) -> dict[str, BaseLocation]:
    """{name (case-folded): location} from "name=location" entries; `ConfigError` when malformed."""
    table: dict[str, BaseLocation] = {}
    for entry in entries:
        name, sep, location = entry.partition("=")
        if not sep or not name.strip() or not location.strip():
            raise ConfigError(f"each entry must read name=location; got {entry!r}")
        table[name.strip().casefold()] = parse_location(location)
    return table


def base_locations(
    base_model: str | None, family: str | None, table: dict[str, BaseLocation]
) -> list[BaseLocation]:
    """Where to look for a checkpoint's base, in order: the entry for the hub's string or the
    family; else the hub's string in the scan's own source, then the `*` entry."""
    for name in (base_model, family):
        if name and name.strip().casefold() in table:
            return [table[name.strip().casefold()]]
    found = [BaseLocation(None, base_model.strip())] if base_model and base_model.strip() else []
    return found + ([table[ANY_BASE]] if ANY_BASE in table else [])
