"""Benchmark: dmsec's FAISS indexes at 1M codes vs numpy brute force and python-threatexchange.

Data (seeded, synthetic): 1,000,000 random 256-bit PDQ codes and 1,000,000 random unit 256-d
float vectors. Queries: half near-copies of stored codes (PDQ: 0-40 flipped bits; dense: cosine
0.85-1.0 to a stored vector), half unrelated. Matching: PDQ range search at Hamming distance
<= 31; dense range search at cosine >= 0.9.

Measured per index: build time, memory (RSS growth while building, and serialised size),
queries per second batched (one call) and single (one call per query), recall and precision
against numpy brute force on the same queries. The reference is python-threatexchange's PDQ
index (`PDQMultiHashIndex`: `IndexBinaryMultiHash(256, nhash=16, b=16)`, nflip = 31 // 16,
range search at radius 32), used through the installed package when it imports, else the same
recipe rebuilt directly with faiss. Timings depend on the machine and on other load: the run
prints faiss's thread count.

Usage: ``python benchmarks/index.py [--quick] [--json out.json]``. ``--quick`` uses fewer
queries (same 1M codes); the last line is ``pdq recall=<r> qps=<q> vs_reference=<ratio>``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine, spinning threads
# made FAISS's batched searches ~8x slower (measured). Set before FAISS loads libgomp; an explicit
# setting in the environment wins. It applies to dmsec and the reference alike.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmsec.match.faiss_index import VectorIndex  # noqa: E402
from dmsec.match.index_policy import IndexPolicy  # noqa: E402

PDQ_THRESHOLD = 31
DENSE_THRESHOLD = 0.9
FLOAT_TIE = 1e-5  # numpy and FAISS sum in different orders: scores this close to t are ties


@dataclass
class Row:
    """One index's figures."""

    name: str
    build_s: float
    rss_mb: float
    bytes_mb: float | None
    qps_batched: float
    qps_single: float
    recall: float
    precision: float


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def score(
    found: set[tuple[int, int]], truth: set[tuple[int, int]], ties: set
) -> tuple[float, float]:
    """Recall over `truth` and precision over `found`, ignoring float ties at the threshold."""
    recall = len(found & truth) / len(truth) if truth else 1.0
    judged = found - ties
    precision = len(judged & truth) / len(judged) if judged else 1.0
    return recall, precision


def pairs_from_range(lims: np.ndarray, ids: np.ndarray, rows: int) -> set[tuple[int, int]]:
    return {(q, int(i)) for q in range(rows) for i in ids[lims[q] : lims[q + 1]]}


# -- PDQ -----------------------------------------------------------------------------------------
def pdq_data(n: int, nq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, (nq, 32), dtype=np.uint8)
    near = nq // 2
    bits = np.unpackbits(codes[rng.choice(n, near, replace=False)], axis=1)
    for i, flips in enumerate(rng.integers(0, 41, near)):
        bits[i, rng.choice(256, flips, replace=False)] ^= 1
    queries[:near] = np.packbits(bits, axis=1)
    return codes, queries[rng.permutation(nq)]


def pdq_truth(codes: np.ndarray, queries: np.ndarray) -> set[tuple[int, int]]:
    """Brute force in numpy: every (query, id) within PDQ_THRESHOLD bits."""
    columns = [np.ascontiguousarray(codes.view(np.uint64)[:, w]) for w in range(4)]
    truth = set()
    for q, query in enumerate(queries.view(np.uint64)):
        dist = np.bitwise_count(columns[0] ^ query[0])
        for w in range(1, 4):
            dist += np.bitwise_count(columns[w] ^ query[w])
        truth.update((q, int(i)) for i in np.flatnonzero(dist <= PDQ_THRESHOLD))
    return truth


def bench_dmsec_pdq(
    name: str,
    codes: np.ndarray,
    queries: np.ndarray,
    truth: set,
    n_truth: int,
    n_single: int,
    kind: str,
) -> Row:
    ids = np.arange(len(codes), dtype=np.int64)
    # the flat row keeps FAISS's scan at every size, for comparison
    policy = IndexPolicy(multihash_above=2**62) if kind == "flat" else IndexPolicy()

    def build() -> VectorIndex:
        index = VectorIndex.build(codes, ids, metric="hamming", dim=256, policy=policy, kind=kind)
        index.range_search(queries[:10], PDQ_THRESHOLD)  # multihash builds its tables here
        return index

    gc.collect()
    before = rss_mb()
    index, build_s = timed(build)
    grown = rss_mb() - before
    assert index.kind == kind, (index.kind, kind)
    size = len(index.to_bytes()) / 2**20
    (lims, _, found), batch_s = timed(lambda: index.range_search(queries, PDQ_THRESHOLD))
    _, single_s = timed(
        lambda: [index.range_search(queries[i : i + 1], PDQ_THRESHOLD) for i in range(n_single)]
    )
    truth = {p for p in truth if p[0] < n_truth}
    recall, precision = score(pairs_from_range(lims, found, n_truth), truth, set())
    return Row(
        name, build_s, grown, size, len(queries) / batch_s, n_single / single_s, recall, precision
    )


def reference_pdq_index() -> tuple[str, Callable[[], Any]]:
    """python-threatexchange's PDQ multi-hash index class, or the same recipe in faiss."""
    try:
        from threatexchange.signal_type.pdq.pdq_faiss_matcher import PDQMultiHashIndex

        return "threatexchange PDQMultiHashIndex (package)", PDQMultiHashIndex
    except ImportError:

        class Rebuilt:
            """PDQMultiHashIndex's recipe: IDMap2(IndexBinaryMultiHash(256, 16, 16)), hex in."""

            def __init__(self) -> None:
                self.faiss_index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryMultiHash(256, 16, 16))

            def add(self, hashes: list[str], custom_ids: Any) -> None:
                vecs = np.array([np.frombuffer(bytes.fromhex(h), np.uint8) for h in hashes])
                self.faiss_index.add_with_ids(vecs, np.array(list(custom_ids), dtype=np.int64))

            def search(
                self, queries: list[str], threshhold: int, return_as_ids: bool = True
            ) -> list:
                faiss.downcast_IndexBinary(self.faiss_index.index).nflip = threshhold // 16
                qs = np.array([np.frombuffer(bytes.fromhex(q), np.uint8) for q in queries])
                lims, _, ids = self.faiss_index.range_search(qs, threshhold + 1)
                return [[int(i) for i in ids[lims[k] : lims[k + 1]]] for k in range(len(queries))]

        return "threatexchange recipe rebuilt with faiss", Rebuilt


def bench_reference_pdq(
    codes: np.ndarray, queries: np.ndarray, truth: set, n_truth: int, n_single: int
) -> Row:
    name, cls = reference_pdq_index()
    gc.collect()
    before = rss_mb()

    def build() -> Any:
        index = cls()
        index.add([c.tobytes().hex() for c in codes], range(len(codes)))
        return index

    index, build_s = timed(build)
    grown = rss_mb() - before
    hexes = [q.tobytes().hex() for q in queries]
    index.search(hexes[:10], PDQ_THRESHOLD, return_as_ids=True)
    results, batch_s = timed(lambda: index.search(hexes, PDQ_THRESHOLD, return_as_ids=True))
    _, single_s = timed(
        lambda: [index.search([h], PDQ_THRESHOLD, return_as_ids=True) for h in hexes[:n_single]]
    )
    found = {(q, int(i)) for q in range(n_truth) for i in results[q]}
    recall, precision = score(found, truth, set())
    size = len(faiss.serialize_index_binary(index.faiss_index)) / 2**20
    return Row(
        name, build_s, grown, size, len(queries) / batch_s, n_single / single_s, recall, precision
    )


# -- dense ---------------------------------------------------------------------------------------
def dense_data(n: int, nq: int, dim: int = 256, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, dim), dtype=np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    q = rng.standard_normal((nq, dim), dtype=np.float32)
    near = nq // 2
    base = xb[rng.choice(n, near, replace=False)]
    noise = q[:near] - (q[:near] * base).sum(1, keepdims=True) * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cos = rng.uniform(0.85, 1.0, (near, 1)).astype(np.float32)
    q[:near] = cos * base + np.sqrt(1 - cos**2) * noise
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return xb, q[rng.permutation(nq)].astype(np.float32)


def dense_truth(xb: np.ndarray, q: np.ndarray) -> tuple[set, set]:
    """Brute force in numpy: pairs clearly above the threshold, and float ties near it."""
    truth, ties = set(), set()
    for start in range(0, len(xb), 100_000):
        sims = q @ xb[start : start + 100_000].T
        for a, b in zip(*np.nonzero(sims >= DENSE_THRESHOLD + FLOAT_TIE), strict=True):
            truth.add((int(a), start + int(b)))
        near = np.abs(sims - DENSE_THRESHOLD) < FLOAT_TIE
        for a, b in zip(*np.nonzero(near), strict=True):
            ties.add((int(a), start + int(b)))
    return truth, ties


def bench_dmsec_dense(xb: np.ndarray, q: np.ndarray, truth: set, ties: set, n_single: int) -> Row:
    ids = np.arange(len(xb), dtype=np.int64)
    gc.collect()
    before = rss_mb()
    index, build_s = timed(
        lambda: VectorIndex.build(
            xb, ids, metric="inner_product", dim=xb.shape[1], policy=IndexPolicy()
        )
    )
    grown = rss_mb() - before
    index.range_search(q[:2], DENSE_THRESHOLD)
    (lims, _, found), batch_s = timed(lambda: index.range_search(q, DENSE_THRESHOLD))
    _, single_s = timed(
        lambda: [index.range_search(q[i : i + 1], DENSE_THRESHOLD) for i in range(n_single)]
    )
    recall, precision = score(pairs_from_range(lims, found, len(q)), truth, ties)
    name = f"dmsec {index.kind} (IndexFlatIP)"
    size = index.ntotal * xb.shape[1] * 4 / 2**20
    return Row(name, build_s, grown, size, len(q) / batch_s, n_single / single_s, recall, precision)


# -- report --------------------------------------------------------------------------------------
def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(
        f"  {'index':44s} {'build_s':>8s} {'rss_MB':>8s} {'file_MB':>8s} {'qps_batch':>10s} "
        f"{'qps_single':>10s} {'recall':>7s} {'precision':>9s}"
    )
    for r in rows:
        size = f"{r.bytes_mb:8.1f}" if r.bytes_mb is not None else f"{'-':>8s}"
        print(
            f"  {r.name:44s} {r.build_s:8.2f} {r.rss_mb:8.1f} {size} {r.qps_batched:10.0f} "
            f"{r.qps_single:10.0f} {r.recall:7.4f} {r.precision:9.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer queries (<= 5 min on 2 cores)")
    parser.add_argument("--n", type=int, default=1_000_000, help="codes per index")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    n = args.n
    pdq_q, pdq_truth_n, pdq_single = (10_000, 1_000, 500) if args.quick else (20_000, 20_000, 2_000)
    dense_q, dense_single = (200, 20) if args.quick else (2_000, 100)
    print(
        f"dmsec index benchmark: n={n:,} quick={args.quick} faiss={faiss.__version__} "
        f"omp_threads={faiss.omp_get_max_threads()} OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} cpus={len(os.sched_getaffinity(0))} {platform.processor() or platform.machine()}"
    )

    codes, queries = pdq_data(n, pdq_q)
    truth, truth_s = timed(lambda: pdq_truth(codes, queries[:pdq_truth_n]))
    print(
        f"PDQ brute force (numpy) on {pdq_truth_n:,} queries: {len(truth):,} pairs <= {PDQ_THRESHOLD} bits in {truth_s:.1f} s"
    )
    ours = bench_dmsec_pdq(
        "dmsec multihash (default at 1M; numpy MIH)",
        codes,
        queries,
        truth,
        pdq_truth_n,
        pdq_single,
        "multihash",
    )
    flat_q = queries[: min(2_000, pdq_q)]
    flat = bench_dmsec_pdq(
        "dmsec flat (IndexBinaryFlat)",
        codes,
        flat_q,
        truth,
        min(pdq_truth_n, len(flat_q)),
        min(pdq_single, 200),
        "flat",
    )
    ref = bench_reference_pdq(codes, queries, truth, pdq_truth_n, pdq_single)
    print_rows(
        f"PDQ: {n:,} codes, {pdq_q:,} queries (half near-copies 0-40 bits), distance <= {PDQ_THRESHOLD}",
        [ours, flat, ref],
    )
    ratio = {
        k: getattr(ours, k) / getattr(ref, k)
        for k in ("build_s", "rss_mb", "qps_batched", "qps_single")
    }
    print(
        f"  dmsec multihash / reference: build_s x{ratio['build_s']:.2f}  rss_MB x{ratio['rss_mb']:.2f}  "
        f"qps_batch x{ratio['qps_batched']:.2f}  qps_single x{ratio['qps_single']:.2f}"
    )

    xb, q = dense_data(n, dense_q)
    (dtruth, ties), dt_s = timed(lambda: dense_truth(xb, q))
    print(
        f"\ndense brute force (numpy) on {dense_q:,} queries: {len(dtruth):,} pairs >= {DENSE_THRESHOLD} "
        f"({len(ties)} float ties within {FLOAT_TIE}) in {dt_s:.1f} s"
    )
    dense = bench_dmsec_dense(xb, q, dtruth, ties, dense_single)
    print_rows(
        f"dense: {n:,} x 256 float32, {dense_q:,} queries (half near-copies), cosine >= {DENSE_THRESHOLD}",
        [dense],
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "pdq": [asdict(r) for r in (ours, flat, ref)],
                    "dense": [asdict(dense)],
                    "pdq_ratio_vs_reference": ratio,
                },
                indent=2,
            )
        )
    print(f"dense recall={dense.recall:.4f} qps={dense.qps_batched:.0f}")
    print(
        f"pdq recall={ours.recall:.4f} qps={ours.qps_batched:.0f} vs_reference={ratio['qps_batched']:.2f}"
    )


if __name__ == "__main__":
    main()
