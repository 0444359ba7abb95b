"""Loading untrusted checkpoint files without running their code.

Hub files are hostile input. Policy (docs/formats.md, "Safety of inputs"):
- safetensors are the default and the only format loaded without an opt-in; the header is
  validated by us first (length, JSON, dtypes, shapes vs byte ranges, no overlap, no gap), so a
  truncated file or a header that lies about tensor sizes is a clear `CheckpointError`;
- a pickle-based file (.bin/.pt/.pth/.ckpt) is refused unless `allow_pickle=True`; then it must
  pass a static scan (picklescan) that finds only allow-listed globals, and is loaded with
  `torch.load(weights_only=True)`. Never `weights_only=False`. Scanners are deny-list tools with
  known bypasses, so a clean scan is necessary, not sufficient: keep the opt-in off for hub scans;
- every file is size-capped before anything is read into memory.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch
from safetensors.torch import load_file

from dmsec.errors import CheckpointError, UnsafeCheckpointError

DEFAULT_MAX_FILE_BYTES = 8 * 2**30
MAX_HEADER_BYTES = 100 * 2**20
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip

# Globals a plain tensor state dict needs; anything else in a pickle is refused.
PICKLE_ALLOWED_GLOBALS = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "FloatStorage"),
        ("torch", "HalfStorage"),
        ("torch", "BFloat16Storage"),
        ("torch", "DoubleStorage"),
        ("torch", "LongStorage"),
        ("torch", "IntStorage"),
        ("torch", "ByteStorage"),
        ("torch", "BoolStorage"),
        ("torch", "float16"),
        ("torch", "float32"),
        ("torch", "bfloat16"),
    }
)


class _DuplicateKeyError(ValueError):
    """A JSON object names the same key twice (a header could hide a tensor that way)."""


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise _DuplicateKeyError(f"duplicate keys {dupes}")
    return dict(pairs)


def _is_index(value: object) -> bool:
    """A non-negative JSON integer (bool is an int in Python, but not in the format)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_metadata(path: Path, metadata: object) -> None:
    """The format allows `__metadata__` to be a string-to-string map only."""
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise CheckpointError(path, "safetensors __metadata__ must map strings to strings")


def is_pickle_file(path: str | Path) -> bool:
    """True for the pickle-based torch formats hubs serve (by suffix)."""
    return Path(path).suffix.lower() in PICKLE_SUFFIXES


def _check_size(path: Path, max_bytes: int) -> int:
    if not path.exists():
        raise CheckpointError(path, "file does not exist")
    if not path.is_file():
        raise CheckpointError(path, "is not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise UnsafeCheckpointError(path, f"file is {size:,} bytes, over the cap of {max_bytes:,}")
    return size


def read_safetensors_header(path: str | Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> dict:
    """Read and validate a safetensors header; returns {tensor name: {dtype, shape, data_offsets}}.

    The `__metadata__` entry, if any, is returned under that key. Raises `CheckpointError` naming
    the file when the header is malformed or disagrees with the file's size.
    """
    path = Path(path)
    size = _check_size(path, max_bytes)
    if size < 8:
        raise CheckpointError(path, f"not a safetensors file: only {size} bytes")
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(
                path, f"safetensors header length {header_len:,} exceeds the file ({size:,} bytes)"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, _DuplicateKeyError) as exc:
        raise CheckpointError(path, f"safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "safetensors header is not a JSON object")
    _check_metadata(path, header.get("__metadata__", {}))
    data_len = size - 8 - header_len
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(path, f"tensor {name!r}: malformed header entry") from None
        if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
            raise CheckpointError(path, f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_index(d) for d in shape):
            raise CheckpointError(path, f"tensor {name!r}: invalid shape {shape!r}")
        expected = math.prod(shape) * _DTYPE_BYTES[dtype]
        if not (_is_index(start) and _is_index(end) and start <= end):
            raise CheckpointError(path, f"tensor {name!r}: invalid data offsets {[start, end]}")
        if end - start != expected:
            raise CheckpointError(
                path,
                f"tensor {name!r}: header says {dtype}{shape} ({expected:,} bytes) "
                f"but its byte range holds {end - start:,}",
            )
        if end > data_len:
            raise CheckpointError(
                path,
                f"tensor {name!r} ends at byte {end:,} but the data has {data_len:,} (truncated?)",
            )
        spans.append((start, end, name))
    spans.sort()
    cursor = 0
    for start, end, name in spans:
        if start != cursor:
            raise CheckpointError(path, f"tensor {name!r}: overlapping or gapped byte ranges")
        cursor = end
    if cursor != data_len:
        raise CheckpointError(path, f"{data_len - cursor:,} trailing bytes after the last tensor")
    return header


def scan_pickle(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> list[tuple[str, str]]:
    """Statically list the globals a pickle file imports; raise if any is outside the allow-list.

    Nothing is unpickled. The scanner reads the whole file, so it is size-capped first. A file the
    scanner cannot parse is refused (`UnsafeCheckpointError`), never passed through.
    """
    from picklescan.scanner import scan_file_path

    path = Path(path)
    _check_size(path, max_bytes)
    try:
        result = scan_file_path(str(path))
    except Exception as exc:  # the scanner itself chokes on some malformed files
        raise UnsafeCheckpointError(path, f"pickle scan failed: {type(exc).__name__}") from None
    if result.scan_err or result.scanned_files == 0:
        raise UnsafeCheckpointError(path, "pickle scan failed: file could not be parsed")
    found = [(g.module, g.name) for g in result.globals]
    bad = sorted({g for g in found if g not in PICKLE_ALLOWED_GLOBALS})
    if bad or result.infected_files:
        names = ", ".join(f"{m}.{n}" for m, n in bad) or "flagged by the scanner"
        raise UnsafeCheckpointError(path, f"pickle imports globals outside the allow-list: {names}")
    return found


def load_state_dict(
    path: str | Path,
    *,
    allow_pickle: bool = False,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> dict[str, torch.Tensor]:
    """Load a tensor state dict from an untrusted file, safetensors first (see module docstring)."""
    path = Path(path)
    if is_pickle_file(path):
        _check_size(path, max_bytes)
        if not allow_pickle:
            raise UnsafeCheckpointError(
                path,
                "pickle-format checkpoint refused (loading it could run code); "
                "use a .safetensors file or opt in with allow_pickle after review",
            )
        scan_pickle(path, max_bytes=max_bytes)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch's messages run to paragraphs: keep the first line
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise UnsafeCheckpointError(
                path, f"torch.load(weights_only=True) refused it: {first_line}"
            ) from None
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise CheckpointError(path, "pickle does not hold a flat tensor state dict")
        return dict(state)
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(
            path, f"unknown checkpoint format {path.suffix!r}; expected .safetensors"
        )
    read_safetensors_header(path, max_bytes)
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors' own checks, after ours
        raise CheckpointError(path, f"safetensors could not load it: {exc}") from None


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The free-form `__metadata__` strings of a validated safetensors file."""
    meta = read_safetensors_header(path).get("__metadata__", {})
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}
