"""Byte transfer with a hard size cap, and the hashes pulled files are verified against.

The cap is enforced while bytes arrive, not after: a server that lies about Content-Length (or
sends none) cannot fill the disk, the transfer stops one chunk past the cap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from dmsec.errors import UnsafeCheckpointError

CHUNK_BYTES = 1 << 20


def stream_to_file(chunks: Iterable[bytes], dest: Path, max_bytes: int, name: str) -> int:
    """Write `chunks` to `dest` (parents created), stopping past `max_bytes`; return bytes written.

    Raises `UnsafeCheckpointError` naming `name` (the file's path in its checkpoint) when the
    stream is longer than `max_bytes`; the partial file is removed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with dest.open("wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > max_bytes:
                    raise UnsafeCheckpointError(
                        name, f"download passed the per-file cap of {max_bytes:,} bytes; stopped"
                    )
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return written


def copy_capped(src: Path, dest: Path, max_bytes: int, name: str) -> int:
    """Copy a local file with the same cap as a download (the file may grow while we read)."""
    with src.open("rb") as f:
        return stream_to_file(iter(lambda: f.read(CHUNK_BYTES), b""), dest, max_bytes, name)


def file_digests(path: Path) -> tuple[int, str, str]:
    """(size, sha256 hex, git blob sha1 hex) of a file, read once."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            sha256.update(chunk)
            git.update(chunk)
    return size, sha256.hexdigest(), git.hexdigest()
