"""The content-addressed checkpoint cache.

Layout under the root (default `$DMSEC_HUB_CACHE`, else `~/.cache/dmsec/hub`):

    blobs/sha256/<aa>/<sha256>                 every verified file once, read-only
    snapshots/<source>/<repo_id>/<revision>/   the checkpoint's files (hard links to blobs,
                                               copies where links fail) + .dmsec-pull.json
    tmp/                                       staging for downloads; never read as a result

Only verified files enter `blobs/`, and a snapshot folder appears by one atomic rename after all
its files are in place, so a crash mid-pull leaves nothing a reader could mistake for a result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dmsec.hub.ref import CheckpointRef

MANIFEST_NAME = ".dmsec-pull.json"
CACHE_ENV = "DMSEC_HUB_CACHE"


def default_cache_root() -> Path:
    """`$DMSEC_HUB_CACHE` if set, else `~/.cache/dmsec/hub`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dmsec" / "hub"


def _segment(value: str) -> str:
    """One safe folder name for an arbitrary id (no separators, never "." or "..")."""
    seg = quote(value, safe="-_@+=,")
    if len(seg) > 200:  # keep names under file-system limits, still unique
        seg = seg[:150] + "~" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return seg


class CheckpointCache:
    """Verified blobs by sha256 and per-revision snapshot folders (see the module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        for sub in ("blobs/sha256", "snapshots", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def blob_path(self, sha256: str) -> Path:
        """Where the blob with this sha256 lives (whether or not it exists)."""
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def has_blob(self, sha256: str) -> bool:
        """Whether a verified file with this sha256 is already cached."""
        return self.blob_path(sha256).is_file()

    def snapshot_dir(self, ref: CheckpointRef) -> Path:
        """The folder a pulled `ref` lives in."""
        return (
            self.root
            / "snapshots"
            / _segment(ref.source)
            / _segment(ref.repo_id)
            / _segment(ref.revision)
        )

    def read_manifest(self, ref: CheckpointRef) -> dict[str, Any] | None:
        """The manifest of a complete snapshot of `ref`, or None."""
        path = self.snapshot_dir(ref) / MANIFEST_NAME
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return manifest if isinstance(manifest, dict) else None

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder under `tmp/` for one pull's downloads, removed afterwards."""
        path = self.root / "tmp" / f"stage-{uuid.uuid4().hex}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def add_blob(self, path: Path, sha256: str) -> Path:
        """Move a verified file into `blobs/` (dropping it if the blob exists); return the blob."""
        blob = self.blob_path(sha256)
        if blob.is_file():
            path.unlink(missing_ok=True)
            return blob
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(path, blob)
        return blob

    def commit(
        self, ref: CheckpointRef, blobs: Mapping[str, Path], manifest: dict[str, Any]
    ) -> Path:
        """Publish a snapshot of `ref`: {path in checkpoint: blob} plus a manifest, atomically."""
        final = self.snapshot_dir(ref)
        build = self.root / "tmp" / f"snap-{uuid.uuid4().hex}"
        build.mkdir()
        try:
            for rel, blob in blobs.items():
                target = build / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(blob, target)
                except OSError:
                    shutil.copy2(blob, target)
            (build / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            final.parent.mkdir(parents=True, exist_ok=True)
            stale = None
            if final.exists():
                stale = self.root / "tmp" / f"stale-{uuid.uuid4().hex}"
                os.replace(final, stale)
            try:
                os.replace(build, final)
            except OSError:
                # Another process published the same revision between our two renames.
                if (final / MANIFEST_NAME).is_file():
                    shutil.rmtree(build, ignore_errors=True)
                else:
                    raise
            if stale is not None:
                shutil.rmtree(stale, ignore_errors=True)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        return final
