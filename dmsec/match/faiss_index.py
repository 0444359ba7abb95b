"""One embedder's FAISS index: codes keyed by int64 artwork ids, range and top-k search.

The FAISS index is always an ID map (``IndexIDMap`` / ``IndexBinaryIDMap``) around the kind the
`IndexPolicy` chose, so FAISS returns artwork ids directly (the python-threatexchange pattern:
int64 ids joined to metadata afterwards). It is saved with FAISS's own serialisation
(``serialize_index`` / ``serialize_index_binary``), never pickle.

Thresholds are inclusive: a Hamming hit has ``distance <= threshold`` (FAISS's radius is strict,
so it searches with ``threshold + 1``), an inner-product hit has ``similarity >= threshold``.

Binary flat indexes above the policy's `multihash_above` answer range searches through
multi-index hashing tables (`dmsec.match.multihash`) built in memory from the flat codes on the
first search; codes added later are scanned as a tail until it grows past 1/16 of the tables,
when they are rebuilt. The FAISS index itself is only ever extended.

Removal: flat (multi-hash included) and IVF indexes delete codes in place (multi-hash tables are
then rebuilt on the next search); HNSW cannot, so its removed codes stay as stale entries that the
registry filters out until `rebuild`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import faiss
import numpy as np

from dmsec.errors import ConfigError
from dmsec.match.embedder import Metric
from dmsec.match.errors import RegistryError
from dmsec.match.gpu import GpuFlatSearcher, gpu_faiss_available, range_via_knn
from dmsec.match.index_policy import IndexKind, IndexPolicy
from dmsec.match.multihash import CHUNK_BITS, MultiIndexHash
from dmsec.match.ranges import RangeResult, filter_ranges, merge_ranges, pad_knn, replace_rows

# Multi-index hashing beats FAISS's flat scan up to nflip = 3 (threshold 63 for 256-bit codes).
MULTIHASH_MAX_NFLIP = 3
TAIL_MIN = 4096  # codes added after the tables were built that are scanned before a rebuild


_KIND_OF_TYPE: dict[str, IndexKind] = {
    "IndexFlatIP": "flat",
    "IndexFlat": "flat",
    "IndexBinaryFlat": "flat",
    "IndexHNSWFlat": "hnsw",
    "IndexIVFFlat": "ivf",
    "IndexBinaryIVF": "ivf",
}


class VectorIndex:
    """A FAISS ID-map index over one embedder's codes; see the module docstring."""

    def __init__(
        self, index: Any, *, metric: Metric, dim: int, policy: IndexPolicy, use_gpu: bool | None
    ) -> None:
        self.metric = metric
        self.dim = dim
        self.policy = policy
        self._index = index
        self._binary = metric == "hamming"
        self._lock = threading.Lock()
        self._gpu: GpuFlatSearcher | None = None
        if use_gpu and not gpu_faiss_available():
            raise ConfigError("`use_gpu` is True but FAISS has no GPU support or sees no GPU")
        self.use_gpu = gpu_faiss_available() if use_gpu is None else use_gpu
        self._id_cache: np.ndarray | None = None
        self._mih: MultiIndexHash | None = None
        self._force_multihash = False
        if int(index.d) != dim:
            raise RegistryError(f"FAISS index has dimension {index.d}; the embedder has {dim}")
        self._apply_search_params()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        codes: np.ndarray,
        ids: np.ndarray,
        *,
        metric: Metric,
        dim: int,
        policy: IndexPolicy,
        kind: IndexKind | None = None,
        use_gpu: bool | None = None,
    ) -> VectorIndex:
        """A new index of `kind` (default: the policy's choice for ``len(codes)``) holding codes."""
        kind = kind or policy.kind_for(metric, len(codes))
        if kind == "ivf" and len(codes) == 0:
            kind = "flat"  # nothing to train the coarse quantizer on yet
        base = _new_base(kind, metric, dim, policy, len(codes))
        if not base.is_trained:
            base.train(codes)
        wrapper = faiss.IndexBinaryIDMap(base) if metric == "hamming" else faiss.IndexIDMap(base)
        out = cls(wrapper, metric=metric, dim=dim, policy=policy, use_gpu=use_gpu)
        out._force_multihash = kind == "multihash"
        if len(codes):
            out.add(codes, ids)
        return out

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        metric: Metric,
        dim: int,
        policy: IndexPolicy,
        use_gpu: bool | None = None,
    ) -> VectorIndex:
        """An index that `to_bytes` wrote."""
        buf = np.frombuffer(data, dtype=np.uint8)
        index: Any
        try:
            if metric == "hamming":
                index = faiss.deserialize_index_binary(buf)
            else:
                index = faiss.deserialize_index(buf)
        except RuntimeError as exc:
            raise RegistryError(f"cannot read FAISS index: {exc}") from None
        if type(index).__name__ not in ("IndexIDMap", "IndexBinaryIDMap"):
            raise RegistryError(f"expected a FAISS ID-map index; got {type(index).__name__}")
        return cls(index, metric=metric, dim=dim, policy=policy, use_gpu=use_gpu)

    def to_bytes(self) -> bytes:
        """FAISS's own serialisation of the whole index."""
        with self._lock:
            if self._binary:
                return faiss.serialize_index_binary(self._index).tobytes()
            return faiss.serialize_index(self._index).tobytes()

    # -- properties -----------------------------------------------------------------------------
    @property
    def base(self) -> Any:
        """The index inside the ID map, downcast to its concrete FAISS type."""
        if self._binary:
            return faiss.downcast_IndexBinary(self._index.index)
        return faiss.downcast_index(self._index.index)

    @property
    def kind(self) -> IndexKind:
        """One of "flat", "multihash", "hnsw" or "ivf"."""
        name = type(self.base).__name__
        if name not in _KIND_OF_TYPE:
            raise RegistryError(f"unsupported FAISS index type {name}")
        kind = _KIND_OF_TYPE[name]
        if kind == "flat" and self._binary and self._multihash_on():
            return "multihash"
        return kind

    @property
    def ntotal(self) -> int:
        """Codes held, stale ones included."""
        return int(self._index.ntotal)

    @property
    def supports_remove(self) -> bool:
        """Whether `remove` deletes codes (flat, multi-hash, IVF) or leaves them stale (HNSW)."""
        return self.kind != "hnsw"

    def ids(self) -> np.ndarray:
        """Artwork ids of every code, in FAISS's internal order (a read-only cached array)."""
        if self._id_cache is None:
            cache = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            cache.flags.writeable = False
            self._id_cache = cache
        return self._id_cache

    # -- mutation -------------------------------------------------------------------------------
    def add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        """Append codes under `ids`; the index is extended, never rebuilt or retrained."""
        codes = self._check(codes)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) != len(codes):
            raise ValueError(f"`ids` has {len(ids)} entries for {len(codes)} codes")
        with self._lock:
            self._index.add_with_ids(codes, ids)
            self._gpu = None
            self._id_cache = None

    def remove(self, ids: np.ndarray) -> int:
        """Delete codes with these ids where the kind allows; returns how many were deleted."""
        if not self.supports_remove or len(ids) == 0:
            return 0
        with self._lock:
            removed = int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))
            self._gpu = None
            self._id_cache = None
            self._mih = None  # row numbers shifted
        return removed

    # -- search ---------------------------------------------------------------------------------
    def range_search(self, queries: np.ndarray, threshold: float) -> RangeResult:
        """Every code within `threshold` of each query (inclusive; see the module docstring)."""
        queries = self._check(queries)
        if self.ntotal == 0 or len(queries) == 0:
            return (
                np.zeros(len(queries) + 1, np.int64),
                np.empty(0, np.float32),
                np.empty(0, np.int64),
            )
        if self.use_gpu and self._flat_storage():
            return self._range_search_gpu(queries, threshold)
        if (
            self.kind == "multihash"
            and int(threshold) // (self.dim // CHUNK_BITS) <= MULTIHASH_MAX_NFLIP
        ):
            return self._range_search_multihash(queries, int(threshold))
        return self._range_search_cpu(queries, threshold)

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest codes per query: ``(scores, ids)``, each (nq, k), id -1 past the end.

        Exact for flat and multi-hash (top-k scans the flat codes); approximate for HNSW, IVF.
        """
        queries = self._check(queries)
        if k < 1:
            raise ValueError(f"`k` must be >= 1; got {k}")
        if self.ntotal == 0:
            return (np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1))
        with self._lock:
            if self.use_gpu and self._flat_storage():
                scores, pos = self._gpu_searcher().knn(queries, k)
                ids = self._positions_to_ids(pos)
            else:
                scores, ids = self._index.search(queries, min(k, self.ntotal))
        return pad_knn(scores.astype(np.float32), ids.astype(np.int64), k)

    # -- internals ------------------------------------------------------------------------------
    def _range_search_cpu(self, queries: np.ndarray, threshold: float) -> RangeResult:
        with self._lock:
            if self._binary:
                lims, dist, ids = self._index.range_search(queries, int(threshold) + 1)
                return lims.astype(np.int64), dist.astype(np.float32), ids.astype(np.int64)
            if self._flat_storage():
                return self._range_search_dense_flat(queries, threshold)
            radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
            lims, sims, ids = self._index.range_search(queries, radius)
        keep = sims >= np.float32(threshold)
        return filter_ranges(lims.astype(np.int64), sims.astype(np.float32), ids, keep)

    def _range_search_gpu(self, queries: np.ndarray, threshold: float) -> RangeResult:
        searcher = self._gpu_searcher()
        if self._binary:

            def within(s: np.ndarray) -> np.ndarray:
                return s <= threshold
        else:

            def within(s: np.ndarray) -> np.ndarray:
                return s >= np.float32(threshold)

        lims, scores, pos, unresolved = range_via_knn(searcher.knn, queries, within, self.ntotal)
        ids = self._positions_to_ids(pos)
        if len(unresolved) == 0:
            return lims, scores, ids
        # Queries with more than GPU_MAX_K hits: answer them on the CPU and splice them in.
        cpu = self._range_search_cpu(queries[unresolved], threshold)
        return replace_rows((lims, scores, ids), unresolved, cpu)

    def _range_search_dense_flat(self, queries: np.ndarray, threshold: float) -> RangeResult:
        """Exact range search as k-NN with growing k: FAISS's k-NN on a flat index runs on BLAS
        for batches, its range search does not (about 10x slower at 1M x 256 here)."""
        t = np.float32(threshold)

        def knn(q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            with _blas_for_batches():
                return self.base.search(q, k)

        lims, scores, pos, _ = range_via_knn(
            knn, queries, lambda s: s >= t, self.ntotal, k_start=16, k_max=self.ntotal
        )
        return lims, scores, self._positions_to_ids(pos)

    def _range_search_multihash(self, queries: np.ndarray, threshold: int) -> RangeResult:
        with self._lock:
            mih = self._mih
            if mih is None or self.ntotal - mih.n > max(TAIL_MIN, mih.n // 16):
                mih = self._mih = MultiIndexHash(
                    self._codes(0), threads=faiss.omp_get_max_threads()
                )
            tail = self._codes(mih.n) if self.ntotal > mih.n else None
        lims, dist, rows = mih.range_search(queries, threshold)
        if tail is not None:  # codes added since the tables were built: scan them
            flat = faiss.IndexBinaryFlat(self.dim)
            flat.add(tail)
            t_lims, t_dist, t_rows = flat.range_search(queries, threshold + 1)
            lims, dist, rows = merge_ranges(
                (lims, dist, rows), (t_lims.astype(np.int64), t_dist, t_rows + mih.n)
            )
        return lims, dist.astype(np.float32), self._positions_to_ids(rows)

    def _codes(self, start: int) -> np.ndarray:
        """The binary flat index's codes from row `start` on, as (n, dim/8) uint8 (a copy)."""
        width = self.dim // 8
        data = faiss.rev_swig_ptr(self.base.xb.data(), self.ntotal * width)
        return np.array(data[start * width :], dtype=np.uint8).reshape(-1, width)

    def _flat_storage(self) -> bool:
        return type(self.base).__name__ in ("IndexFlatIP", "IndexFlat", "IndexBinaryFlat")

    def _multihash_on(self) -> bool:
        return self._force_multihash or self.ntotal > self.policy.multihash_above

    def _gpu_searcher(self) -> GpuFlatSearcher:
        if self._gpu is None:
            self._gpu = GpuFlatSearcher(self.base, binary=self._binary)
        return self._gpu

    def _positions_to_ids(self, positions: np.ndarray) -> np.ndarray:
        id_map = self.ids()
        safe = np.where(positions >= 0, positions, 0)
        return np.where(positions >= 0, id_map[safe], -1).astype(np.int64)

    def _apply_search_params(self) -> None:
        base = self.base
        kind = self.kind
        if kind == "hnsw":
            base.hnsw.efSearch = self.policy.hnsw_ef_search
        elif kind == "ivf":
            base.nprobe = min(self.policy.ivf_nprobe, int(base.nlist))

    def _check(self, codes: np.ndarray) -> np.ndarray:
        dtype = np.uint8 if self._binary else np.float32
        width = self.dim // 8 if self._binary else self.dim
        arr = np.ascontiguousarray(codes)
        if arr.ndim != 2 or arr.shape[1] != width or arr.dtype != dtype:
            raise ValueError(
                f"codes must be a (N, {width}) {np.dtype(dtype)} array; got {arr.shape} {arr.dtype}"
            )
        return arr


def _new_base(kind: IndexKind, metric: Metric, dim: int, policy: IndexPolicy, n: int) -> Any:
    """An empty FAISS index of `kind` for `n` codes (IVF is trained by the caller)."""
    if metric == "hamming":
        if kind in ("flat", "multihash"):  # multi-hash tables are built over the flat codes
            return faiss.IndexBinaryFlat(dim)
        if kind == "ivf":
            return faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(dim), dim, policy.ivf_nlist(n))
        raise ConfigError(f"`kind` {kind!r} is not available for Hamming codes (no range search)")
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, policy.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = policy.hnsw_ef_construction
        return index
    if kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        return faiss.IndexIVFFlat(quantizer, dim, policy.ivf_nlist(n), faiss.METRIC_INNER_PRODUCT)
    raise ConfigError(f"`kind` {kind!r} is not available for inner-product vectors")


_BLAS_LOCK = threading.Lock()


@contextlib.contextmanager
def _blas_for_batches() -> Iterator[None]:
    """Let FAISS use BLAS for batches of 20+ queries (this build's default is 128,000)."""
    with _BLAS_LOCK:
        saved = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = 20
        try:
            yield
        finally:
            faiss.cvar.distance_compute_blas_threshold = saved
