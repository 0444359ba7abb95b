"""Moving embedder codes between NumPy arrays and artworks.parquet's Arrow columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dmsec.match.embedder import Embedder


def codes_to_arrow(embedder: Embedder, codes: np.ndarray) -> pa.Array:
    """(N, width) codes as the embedder's Arrow column type (fixed binary or fixed list)."""
    codes = embedder.check_codes(codes)
    if embedder.metric == "hamming":
        width = codes.shape[1]
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), len(codes), [None, pa.py_buffer(codes.tobytes())]
        )
    return pa.FixedSizeListArray.from_arrays(
        pa.array(codes.ravel(), type=pa.float32()), codes.shape[1]
    )


def codes_from_arrow(embedder: Embedder, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The embedder's column back as a C-contiguous (N, width) array of its code dtype."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if embedder.metric == "hamming":
        width = embedder.dim // 8
        if len(arr) == 0:
            return np.empty((0, width), np.uint8)
        if not isinstance(arr, pa.FixedSizeBinaryArray) or arr.type.byte_width != width:
            raise ValueError(f"column {embedder.name!r} must be binary({width}); got {arr.type}")
        data = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
        data = data[arr.offset * width : (arr.offset + len(arr)) * width]
        return np.ascontiguousarray(data.reshape(len(arr), width))
    dim = embedder.dim
    if len(arr) == 0:
        return np.empty((0, dim), np.float32)
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return np.ascontiguousarray(values.reshape(len(arr), dim))
