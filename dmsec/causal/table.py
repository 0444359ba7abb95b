"""Parquet in, graph out: SPOT on any numeric table.

`read_numeric_table` keeps the numeric (integer, float, boolean) columns of a Parquet file, or
the ones named, drops rows with a missing value and refuses constant columns, naming them.
`write_graph` stores the learned PAG and MAG as an edge list (JSON, or Parquet for ``.parquet``)
together with the resolved configuration, versions and seed, so a run can be replayed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dmsec.causal.graphs import ARROW, CIRCLE, NONE, TAIL, edge_string

MIN_ROWS = 10
_MARK = {CIRCLE: "circle", ARROW: "arrow", TAIL: "tail"}


def read_numeric_table(
    path: str | Path, columns: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """``(data (n, d) float64, column names)`` from a Parquet file's numeric columns."""
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    table = pq.read_table(path)
    numeric = [
        f.name
        for f in table.schema
        if pat.is_integer(f.type) or pat.is_floating(f.type) or pat.is_boolean(f.type)
    ]
    if columns:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ValueError(f"`columns` {missing} are not in {path} (has {table.column_names})")
        non_numeric = [c for c in columns if c not in numeric]
        if non_numeric:
            raise ValueError(f"`columns` {non_numeric} of {path} are not numeric")
        names = list(columns)
    else:
        names = numeric
    if len(names) < 2:
        raise ValueError(f"{path}: need at least 2 numeric columns; found {names}")
    cols = [table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in names]
    data = np.column_stack(cols)
    data = data[np.all(np.isfinite(data), axis=1)]
    if data.shape[0] < MIN_ROWS:
        raise ValueError(f"{path}: need at least {MIN_ROWS} complete rows; got {data.shape[0]}")
    constant = [c for c, s in zip(names, data.std(axis=0), strict=True) if s == 0]
    if constant:
        raise ValueError(f"{path}: columns {constant} are constant; drop them with `columns`")
    return data, names


def edge_rows(
    E: np.ndarray, names: list[str], graph: str, S: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """One row per edge: end points, the mark at each end, a rendering like ``'a o-> b'``."""
    rows = []
    d = E.shape[0]
    for a in range(d):
        for b in range(a + 1, d):
            if E[a, b] == NONE:
                continue
            rows.append(
                {
                    "graph": graph,
                    "source": names[a],
                    "target": names[b],
                    "mark_at_source": _MARK[int(E[b, a])],
                    "mark_at_target": _MARK[int(E[a, b])],
                    "edge": edge_string(E, a, b, names),
                    "posterior": float(S[a, b]) if S is not None else None,
                }
            )
    return rows


def write_graph(
    path: str | Path,
    names: list[str],
    pag: np.ndarray,
    mag: np.ndarray | None,
    posterior: np.ndarray | None,
    run_info: dict[str, Any],
) -> Path:
    """Write the edges of `pag` and `mag` (None: no MAG, e.g. a skeleton alone); JSON (with
    `run_info`) or Parquet (info in metadata)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = edge_rows(pag, names, "pag", posterior)
    if mag is not None:
        rows += edge_rows(mag, names, "mag", posterior)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [
                ("graph", pa.string()),
                ("source", pa.string()),
                ("target", pa.string()),
                ("mark_at_source", pa.string()),
                ("mark_at_target", pa.string()),
                ("edge", pa.string()),
                ("posterior", pa.float64()),
            ],
            metadata={"dmsec.spot": json.dumps(run_info, default=_jsonable)},
        )
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    else:
        doc = {"nodes": names, "edges": rows, "run": run_info}
        path.write_text(json.dumps(doc, indent=1, default=_jsonable))
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
