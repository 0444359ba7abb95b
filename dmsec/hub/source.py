"""The hub-source interface, the listing filter and the registry of sources by name.

A `HubSource` lists `CheckpointRef`s lazily (a generator that pages through the hub as it is
consumed) and downloads a ref's files into a folder. Listing is two steps, so a scan can drop
what its ledger already holds before the hub is asked anything per repo: `listing` yields refs as
the pages give them (identity, revision, kind, file names), `details` completes one (sizes,
hashes) where the pages leave that out; `list` does both. Each backend is a sibling module
(`local.py`, `huggingface.py`, `civitai.py`, `s3.py`) registered under a unique short `name`,
which is also the `source` field of its refs and the key the CLI and configs select it by.
Pulling (caps, hashes, format checks, the cache) is the same for every source: see `pull.py`.
"""

from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from dmsec.errors import ConfigError, DmsecError
from dmsec.hub.ref import KINDS, CheckpointFile, CheckpointRef
from dmsec.plugins import Registry

logger = logging.getLogger(__name__)


class HubError(DmsecError):
    """A hub could not be reached or answered badly (after retries). Transient, not the file's fault."""


class RefNotFoundError(HubError, LookupError):
    """The hub has no checkpoint (or no such revision) under that id."""


@dataclass(frozen=True)
class ListFilter:
    """Which refs a listing yields.

    `kinds`: kinds to keep (default full fine-tunes and LoRAs, not base models). `base_models`:
    keep refs whose base model equals one of these (case-insensitive); None keeps all. `since`:
    keep refs modified at or after this time (refs whose hub gives no time are kept, since they
    might be new). `limit`: stop after this many refs.
    """

    kinds: frozenset[str] = frozenset({"full", "lora"})
    base_models: frozenset[str] | None = None
    since: datetime | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        kinds = frozenset(self.kinds)
        if not kinds or not kinds <= set(KINDS):
            raise ConfigError(f"`kinds` must be a non-empty subset of {KINDS}; got {sorted(kinds)}")
        object.__setattr__(self, "kinds", kinds)
        if self.base_models is not None:
            bases = frozenset(b.strip() for b in self.base_models)
            if not bases or "" in bases:
                raise ConfigError("`base_models` must hold non-empty names, or be None")
            object.__setattr__(self, "base_models", bases)
        if self.since is not None:
            if self.since.tzinfo is None:
                raise ConfigError(f"`since` must be time-zone aware; got {self.since.isoformat()}")
            object.__setattr__(self, "since", self.since.astimezone(UTC))
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ConfigError(f"`limit` must be a positive int or None; got {self.limit!r}")

    def base_model_matches(self, base_model: str | None) -> bool:
        """True when no base filter is set or `base_model` is one of the wanted ones."""
        if self.base_models is None:
            return True
        wanted = {b.casefold() for b in self.base_models}
        return base_model is not None and base_model.strip().casefold() in wanted

    def modified_matches(self, last_modified: datetime | None) -> bool:
        """True when no `since` is set, the time is unknown, or it is at/after `since`."""
        return self.since is None or last_modified is None or last_modified >= self.since

    def matches(self, ref: CheckpointRef) -> bool:
        """Whether `ref` passes every criterion except `limit`."""
        return (
            ref.kind in self.kinds
            and self.base_model_matches(ref.base_model)
            and self.modified_matches(ref.last_modified)
        )


class HubSource(ABC):
    """A place checkpoints are listed and downloaded from. Subclasses set `name` and `schemes`."""

    #: Unique short name; the `source` of every ref this backend yields; the registry key.
    name: ClassVar[str]
    #: URI schemes `source_from_uri` dispatches to this class (e.g. ("hf",)).
    schemes: ClassVar[tuple[str, ...]]

    @classmethod
    @abstractmethod
    def from_uri(cls, uri: str, **options: Any) -> HubSource:
        """Build the source a URI names (`options`: endpoints, credentials, retry policy...)."""

    @property
    @abstractmethod
    def uri(self) -> str:
        """A URI that `source_from_uri` turns back into an equivalent source (no secrets)."""

    @abstractmethod
    def iter_refs(self, flt: ListFilter) -> Iterator[CheckpointRef]:
        """Yield refs page by page, with no per-repo call where the hub allows (`details`
        completes them). May apply parts of `flt` on the hub side; need not apply all."""

    @abstractmethod
    def get(self, repo_id: str, revision: str | None = None) -> CheckpointRef:
        """The ref of one checkpoint (its newest revision when `revision` is None)."""

    @abstractmethod
    def fetch(
        self, ref: CheckpointRef, files: Sequence[CheckpointFile], dest: Path, max_file_bytes: int
    ) -> None:
        """Download `files` of `ref` to `dest / file.path`, streaming.

        Must stop a file as soon as it passes `max_file_bytes` and raise `UnsafeCheckpointError`;
        raise `HubError` (or the client's own error) when the hub fails. Verification of sizes
        and hashes is the caller's job, so `fetch` stays a plain transfer.
        """

    def details(self, ref: CheckpointRef) -> CheckpointRef | None:
        """`ref` as `listing` gave it, with what a listing page leaves out (file sizes and hashes,
        the hub's own scan) filled in by per-repo calls; None when the hub no longer serves it as
        a checkpoint (gone, gated). Sources whose listing is already complete return `ref`."""
        return ref

    def listing(self, flt: ListFilter | None = None) -> Iterator[CheckpointRef]:
        """Lazily yield the refs that pass `flt` as the listing pages give them, with no per-repo
        call: identity and revision are final, files may lack sizes and hashes (`details` adds
        them). A page that fails raises `HubError` after the refs of the pages before it."""
        flt = flt or ListFilter()
        refs: Iterable[CheckpointRef] = (r for r in self.iter_refs(flt) if flt.matches(r))
        if flt.limit is not None:
            refs = itertools.islice(refs, flt.limit)
        yield from refs

    def list(self, flt: ListFilter | None = None) -> Iterator[CheckpointRef]:
        """Lazily yield the refs that pass `flt` (default: full and LoRA checkpoints), each with
        its `details`."""
        for listed in self.listing(flt):
            ref = self.details(listed)
            if ref is not None:
                yield ref

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


# Built-ins are imported on first use, so `hf` does not import boto3 and vice versa.
SOURCES: Registry[HubSource] = Registry(
    "hub source",
    {
        "local": "dmsec.hub.local:LocalSource",
        "hf": "dmsec.hub.huggingface:HuggingFaceSource",
        "civitai": "dmsec.hub.civitai:CivitaiSource",
        "s3": "dmsec.hub.s3:S3Source",
    },
)
_BUILTIN_SCHEMES: dict[str, str] = {"file": "local", "hf": "hf", "civitai": "civitai", "s3": "s3"}

#: class decorator: register a source under its `name` (names must be unique)
register_source = SOURCES.register
#: names of every known source, built-in or registered
source_names = SOURCES.names
#: the source class registered under a name
get_source_class = SOURCES.get


def source_from_uri(uri: str, **options: Any) -> HubSource:
    """Build a source from a URI: a local path or file://, hf://, civitai://, s3://bucket/prefix."""
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"`uri` must be a non-empty string; got {uri!r}")
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else "file"
    for cls in SOURCES.classes():
        if scheme in cls.schemes:
            return cls.from_uri(uri, **options)
    if scheme in _BUILTIN_SCHEMES:
        return get_source_class(_BUILTIN_SCHEMES[scheme]).from_uri(uri, **options)
    raise ConfigError(f"`uri` {uri!r}: no hub source handles the scheme {scheme!r}")
