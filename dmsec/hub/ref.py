"""`CheckpointRef`: what a hub listing says about one checkpoint, before anything is downloaded.

A ref is a plain, immutable record. Everything in it came from an untrusted hub, so it is
validated on construction: file paths must stay inside the checkpoint (no absolute paths, no
`..`), hashes must look like hashes, timestamps carry a time zone. A source that meets a bad item
logs it and skips it; it never yields an invalid ref.

Identity: `(source, repo_id, revision)` names one immutable version of a checkpoint. `source` is
the short name of the backend (`local`, `hf`, `civitai`, `s3`); `repo_id` is unique within it
(HF "author/name", a Civitai model id, an S3 "bucket/key/prefix", a path under a local root);
`revision` changes whenever the content does (a commit sha, a Civitai version id, a fingerprint of
sizes and ETags or mtimes).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal, cast, get_args

Kind = Literal["full", "lora", "base"]
#: "full": a full fine-tune (diffusers folder or single-file); "lora": an adapter on a base model;
#: "base": a pretrained model other checkpoints are fine-tuned from (not scanned by default).
KINDS: tuple[str, ...] = get_args(Kind)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def check_relative_path(value: str, field_name: str = "path") -> str:
    """Validate a path taken from a hub: relative, POSIX, no `..`, no empty parts; return it.

    Raises `ValueError` naming the field. This is what keeps a hostile listing from writing
    outside the download folder.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{field_name}` must be a non-empty string; got {value!r}")
    if "\\" in value or "\x00" in value or value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"`{field_name}` must be a relative POSIX path; got {value!r}")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"`{field_name}` must not contain empty, '.' or '..' parts; got {value!r}")
    return str(PurePosixPath(value))


@dataclass(frozen=True)
class CheckpointFile:
    """One file of a checkpoint, as the hub describes it.

    `path` is relative to the checkpoint's root. `size` is what the hub declares (`size_exact` is
    False where the hub rounds, as Civitai's `sizeKB` does). `sha256` (content) and `git_sha1`
    (a git blob id, which HF gives for small non-LFS files) are verified on pull when present.
    `url` is a direct download address where the hub gives one per file.
    """

    path: str
    size: int | None = None
    sha256: str | None = None
    git_sha1: str | None = None
    size_exact: bool = True
    url: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", check_relative_path(self.path, "path"))
        if self.size is not None and (
            not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0
        ):
            raise ValueError(f"`size` of {self.path!r} must be an int >= 0; got {self.size!r}")
        if self.sha256 is not None:
            digest = str(self.sha256).lower()
            if not _SHA256.match(digest):
                raise ValueError(f"`sha256` of {self.path!r} is not 64 hex digits: {self.sha256!r}")
            object.__setattr__(self, "sha256", digest)
        if self.git_sha1 is not None:
            digest = str(self.git_sha1).lower()
            if not _SHA1.match(digest):
                raise ValueError(f"`git_sha1` of {self.path!r} is not 40 hex digits")
            object.__setattr__(self, "git_sha1", digest)

    @property
    def suffix(self) -> str:
        """Lower-case file suffix, e.g. ".safetensors"."""
        return PurePosixPath(self.path).suffix.lower()


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint a hub lists: identity, kind, base model, files and descriptive fields.

    `family` is the base-model family ("sd1", "sd2", "sdxl", "sd3", "flux", ...; see
    `dmsec.models.family`) the hub's metadata or the file's header names, None when neither does.
    `skip_reason` is set when the listing already shows the scan cannot use it (a weights file
    that holds no diffusion model): it is listed, so the scan writes a `skipped` row saying why.
    """

    source: str
    repo_id: str
    revision: str
    kind: Kind
    base_model: str | None = None
    files: tuple[CheckpointFile, ...] = ()
    tags: tuple[str, ...] = ()
    license: str | None = None
    last_modified: datetime | None = None
    url: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    family: str | None = None
    skip_reason: str | None = None

    def __post_init__(self) -> None:
        for name in ("source", "repo_id", "revision"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or "\x00" in value:
                raise ValueError(f"`{name}` must be a non-empty string; got {value!r}")
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}; got {self.kind!r}")
        for name in ("base_model", "family", "skip_reason"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"`{name}` must be a string or None; got {value!r}")
        files = tuple(self.files)
        if not all(isinstance(f, CheckpointFile) for f in files):
            raise ValueError("`files` must hold CheckpointFile records")
        paths = [f.path for f in files]
        if len(set(paths)) != len(paths):
            raise ValueError(f"`files` of {self.repo_id!r} lists a path twice")
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "tags", tuple(str(t) for t in self.tags))
        if self.last_modified is not None:
            if not isinstance(self.last_modified, datetime) or self.last_modified.tzinfo is None:
                raise ValueError(
                    f"`last_modified` must be a time-zone aware datetime; got {self.last_modified!r}"
                )
            object.__setattr__(self, "last_modified", self.last_modified.astimezone(UTC))

    @property
    def key(self) -> tuple[str, str, str]:
        """(source, repo_id, revision): the identity the ledger and the cache use."""
        return (self.source, self.repo_id, self.revision)

    @property
    def declared_size(self) -> int | None:
        """Sum of the declared file sizes, or None when any size is unknown."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(cast(list[int], sizes))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (datetimes as ISO strings); `from_dict` inverts it."""
        row = asdict(self)
        row["last_modified"] = self.last_modified.isoformat() if self.last_modified else None
        row["tags"] = list(self.tags)
        row["files"] = [asdict(f) for f in self.files]
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> CheckpointRef:
        """Rebuild (and re-validate) a ref from `to_dict` output."""
        data = dict(row)
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown CheckpointRef fields: {sorted(unknown)}")
        modified = data.get("last_modified")
        if isinstance(modified, str):
            data["last_modified"] = parse_timestamp(modified)
        data["files"] = tuple(CheckpointFile(**f) for f in data.get("files") or ())
        data["tags"] = tuple(data.get("tags") or ())
        data["extra"] = dict(data.get("extra") or {})
        return cls(**data)


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO-8601 timestamp from a hub ("Z" suffix allowed); naive ones are taken as UTC."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
