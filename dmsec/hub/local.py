"""A local folder as a hub: the tiny zoo, a directory of LoRA files, a diffusers save_pretrained.

URIs: a plain path or `file:///abs/path`. `repo_id` is the checkpoint's path relative to the root
("." when the root itself is one checkpoint). `revision` is a fingerprint of the checkpoint's file
paths, sizes and mtimes, so any rewrite makes it a new revision (files are hashed on pull, not on
listing, to keep listing a large folder cheap). A `base_model` given as a relative path (the zoo
writes one) is resolved against the checkpoint folder, then the root: inside the root it becomes
the repo_id of that checkpoint in this same source; otherwise the string is kept as given.
Hidden files and folders (".git", ".cache") are skipped; folder symlinks are not followed.
A folder's README.md front matter is its hub metadata, as on the Hub (`layout.py`). A diffusers
folder with no sign of being a fine-tune (no base model named, no card saying so) that another
listed checkpoint names as its base is listed as a base (`demote_bases`), so it is pulled as a
base and not scanned as a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dmsec.errors import ConfigError, UnsafeCheckpointError
from dmsec.hub.layout import (
    CIVITAI_INFO,
    DetectedCheckpoint,
    FileEntry,
    detect_checkpoints,
    has_root_marker,
)
from dmsec.hub.ref import CheckpointFile, CheckpointRef, check_relative_path
from dmsec.hub.source import HubSource, ListFilter, RefNotFoundError, register_source
from dmsec.hub.transfer import copy_capped
from dmsec.models.prompts import card_extra

logger = logging.getLogger(__name__)


class _FolderReader:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read_range(self, path: str, start: int, length: int) -> bytes:
        with (self.root / path).open("rb") as f:
            f.seek(start)
            return f.read(length)


def revision_fingerprint(parts: Sequence[tuple[Any, ...]]) -> str:
    """40 hex digits naming a set of (path, size, version) tuples, order-independent."""
    blob = json.dumps(sorted(parts, key=lambda p: str(p[0])), separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def marker_fields(marker: dict | None) -> tuple[tuple[str, ...], str | None, dict[str, str]]:
    """(tags, license, other scalar fields as strings) from a zoo `dmsec_model.json`."""
    if not marker:
        return (), None, {}
    raw_tags = marker.get("tags")
    tags = tuple(str(t) for t in raw_tags) if isinstance(raw_tags, list) else ()
    license_ = marker.get("license") if isinstance(marker.get("license"), str) else None
    skip = {"kind", "base_model", "tags", "license"}
    extra = {
        str(k): str(v)
        for k, v in marker.items()
        if k not in skip and isinstance(v, str | int | float | bool)
    }
    return tags, license_, extra


@register_source
class LocalSource(HubSource):
    """Checkpoints in a folder on this machine (see the module docstring)."""

    name = "local"
    schemes = ("file",)

    def __init__(self, root: str | Path) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise ConfigError(f"`root` must be an existing folder; got {str(root)!r}")
        self.root = path.resolve()

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> LocalSource:
        """`file:///abs/path` or a plain path; no options."""
        if options:
            raise ConfigError(f"local source takes no options; got {sorted(options)}")
        if uri.startswith("file://"):
            parts = urlsplit(uri)
            if parts.netloc not in ("", "localhost"):
                raise ConfigError(f"`uri` {uri!r}: file URIs must name a local path")
            uri = unquote(parts.path)
        return cls(uri)

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    # -- listing ---------------------------------------------------------------------------
    def _walk(self, top: Path) -> list[FileEntry]:
        entries = []
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                full = Path(folder) / name
                if name.startswith(".") or not full.is_file():
                    continue
                stat = full.stat()
                modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                rel = full.relative_to(self.root).as_posix()
                entries.append(FileEntry(rel, stat.st_size, modified, str(stat.st_mtime_ns)))
        return entries

    def _entry(self, path: Path) -> FileEntry:
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        rel = path.relative_to(self.root).as_posix()
        return FileEntry(rel, stat.st_size, modified, str(stat.st_mtime_ns))

    def _subtrees(self) -> Iterator[list[FileEntry]]:
        """The whole root when it is one checkpoint, else one subtree per top-level entry."""
        children = sorted(p for p in self.root.iterdir() if not p.name.startswith("."))
        top_names = [p.name for p in children if p.is_file()]
        if (self.root / "unet" / "config.json").is_file():
            top_names.append("unet/config.json")
        if has_root_marker(top_names):
            yield self._walk(self.root)
            return
        for child in children:
            if child.is_dir() and not child.is_symlink():
                yield self._walk(child)
            elif child.is_file() and not child.name.endswith(CIVITAI_INFO):
                info = child.with_suffix(CIVITAI_INFO)  # a Civitai download's version JSON
                yield [self._entry(child)] + ([self._entry(info)] if info.is_file() else [])

    def iter_refs(self, flt: ListFilter) -> Iterator[CheckpointRef]:
        yield from demote_bases(self._refs())

    def _refs(self) -> Iterator[CheckpointRef]:
        reader = _FolderReader(self.root)
        for entries in self._subtrees():
            try:
                found = list(detect_checkpoints(entries, reader))
            except OSError as exc:
                logger.warning("local: cannot read under %s (%s); skipped", self.root, exc)
                continue
            for detected in found:
                ref = self._to_ref(detected)
                if ref is not None:
                    yield ref

    def _to_ref(self, detected: DetectedCheckpoint) -> CheckpointRef | None:
        url = (self.root / detected.root).as_uri() if detected.root else self.root.as_uri()
        return ref_from_detected(
            self.name, detected.root or ".", detected, self._resolve_base(detected), url
        )

    def _resolve_base(self, detected: DetectedCheckpoint) -> str | None:
        base = detected.base_model
        if base is None or "://" in base:
            return base
        folder = self.root / detected.root
        if detected.single_file:
            folder = folder.parent
        for candidate in (folder / base, self.root / base):
            try:
                if not candidate.exists():
                    continue
                resolved = candidate.resolve()
            except OSError:
                continue
            if resolved == self.root:
                return "."
            if resolved.is_relative_to(self.root):
                return resolved.relative_to(self.root).as_posix()
            return str(resolved)
        return base

    # -- one ref, and its files ------------------------------------------------------------
    def get(self, repo_id: str, revision: str | None = None) -> CheckpointRef:
        target = self._path_of(repo_id)
        if target.is_dir():
            entries = self._walk(target)
        elif target.is_file():
            entries = [self._entry(target)]
        else:
            raise RefNotFoundError(f"local: no checkpoint {repo_id!r} under {self.root}")
        wanted = "" if repo_id == "." else repo_id
        for detected in detect_checkpoints(entries, _FolderReader(self.root)):
            if detected.root == wanted:
                ref = self._to_ref(detected)
                if ref is not None and revision in (None, ref.revision):
                    return ref
                if ref is not None:
                    raise RefNotFoundError(
                        f"local: {repo_id!r} is now at revision {ref.revision}, not {revision}"
                    )
        raise RefNotFoundError(f"local: {repo_id!r} is not a checkpoint under {self.root}")

    def _path_of(self, repo_id: str) -> Path:
        if repo_id == ".":
            return self.root
        return self.root / check_relative_path(repo_id, "repo_id")

    def fetch(
        self, ref: CheckpointRef, files: Sequence[CheckpointFile], dest: Path, max_file_bytes: int
    ) -> None:
        base = self._path_of(ref.repo_id)
        for f in files:
            src = base if base.is_file() else base / f.path
            if not src.resolve().is_relative_to(self.root):
                raise UnsafeCheckpointError(
                    f.path, "is a link that resolves outside the source root"
                )
            copy_capped(src, dest / f.path, max_file_bytes, f.path)


def demote_bases(refs: Iterable[CheckpointRef]) -> Iterator[CheckpointRef]:
    """`refs`, with each full model that names no base of its own and that another ref names as
    its base listed as kind "base". Refs that cannot be bases pass at once; the others wait for
    the end of the listing."""
    named: set[str] = set()
    maybe: list[CheckpointRef] = []
    for ref in refs:
        if ref.base_model:
            named.add(ref.base_model)
        if ref.kind == "full" and ref.base_model is None:
            maybe.append(ref)
        else:
            yield ref
    for ref in maybe:
        yield replace(ref, kind="base") if ref.repo_id in named else ref


def ref_from_detected(
    source: str, repo_id: str, detected: DetectedCheckpoint, base_model: str | None, url: str
) -> CheckpointRef | None:
    """A `CheckpointRef` for a checkpoint found in a file tree (local folder or S3 prefix);
    None (logged) when its file list is unusable."""
    try:
        files = tuple(CheckpointFile(path=f.path, size=f.size) for f in detected.files)
    except ValueError as exc:
        logger.warning("%s: %s skipped: %s", source, repo_id, exc)
        return None
    tags, license_, extra = marker_fields(detected.marker)
    tags += tuple(t for t in detected.card.tags if t not in tags)
    extra = {**card_extra(detected.card), **detected.hub_extra, **extra}
    modified = [f.modified for f in detected.files if f.modified is not None]
    return CheckpointRef(
        source=source,
        repo_id=repo_id,
        revision=revision_fingerprint([(f.path, f.size, f.etag) for f in detected.files]),
        kind=detected.kind,
        base_model=base_model,
        files=files,
        tags=tags,
        license=license_ or detected.card.license,
        last_modified=max(modified) if modified else None,
        url=url,
        extra=extra,
        family=detected.family,
        skip_reason=detected.skip_reason,
    )
