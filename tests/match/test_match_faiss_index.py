"""VectorIndex: exact kinds equal numpy brute force; removal, serialisation, incremental add."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from dmsec.errors import ConfigError
from dmsec.match.faiss_index import VectorIndex
from dmsec.match.gpu import range_via_knn
from dmsec.match.index_policy import IndexPolicy

N, NQ = 3000, 60
POLICY = IndexPolicy()


def hamming(q: np.ndarray, xb: np.ndarray) -> np.ndarray:
    return np.bitwise_count(q[:, None, :] ^ xb[None, :, :]).sum(axis=2)


@pytest.fixture(scope="module")
def binary_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    xb = rng.integers(0, 256, (N, 32), dtype=np.uint8)
    bits = np.unpackbits(xb[:NQ], axis=1)
    for i in range(NQ):  # queries at every distance 0..59 from a stored code
        bits[i, rng.choice(256, i, replace=False)] ^= 1
    return xb, np.arange(100, 100 + N, dtype=np.int64), np.packbits(bits, axis=1)


@pytest.fixture(scope="module")
def dense_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((N, 64)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    q = (
        xb[:NQ]
        + rng.standard_normal((NQ, 64)).astype(np.float32) * np.linspace(0, 0.6, NQ)[:, None]
    )
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return xb, np.arange(100, 100 + N, dtype=np.int64), q.astype(np.float32)


def pairs(lims: np.ndarray, ids: np.ndarray) -> set[tuple[int, int]]:
    return {(q, int(i)) for q in range(len(lims) - 1) for i in ids[lims[q] : lims[q + 1]]}


@pytest.mark.parametrize("kind", ["flat", "multihash"])
@pytest.mark.parametrize("threshold", [0, 16, 31, 32, 47, 63, 64, 100])
def test_exact_binary_range_search_equals_brute_force(binary_data, kind, threshold) -> None:
    xb, ids, q = binary_data
    index = VectorIndex.build(xb, ids, metric="hamming", dim=256, policy=POLICY, kind=kind)
    lims, dist, found = index.range_search(q, threshold)
    d = hamming(q, xb)
    truth = {(int(a), int(ids[b])) for a, b in zip(*np.nonzero(d <= threshold), strict=True)}
    assert pairs(lims, found) == truth
    assert (dist <= threshold).all()


def test_ivf_binary_range_search_has_no_false_hits(binary_data) -> None:
    xb, ids, q = binary_data
    index = VectorIndex.build(xb, ids, metric="hamming", dim=256, policy=POLICY, kind="ivf")
    lims, _, found = index.range_search(q, 31)
    truth = {(int(a), int(ids[b])) for a, b in zip(*np.nonzero(hamming(q, xb) <= 31), strict=True)}
    assert pairs(lims, found) <= truth


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.95])
def test_exact_dense_range_search_equals_brute_force(dense_data, threshold) -> None:
    xb, ids, q = dense_data
    index = VectorIndex.build(xb, ids, metric="inner_product", dim=64, policy=POLICY)
    assert index.kind == "flat"
    lims, sims, found = index.range_search(q, threshold)
    s = q @ xb.T
    clear = {(int(a), int(ids[b])) for a, b in zip(*np.nonzero(s >= threshold + 1e-5), strict=True)}
    maybe = {(int(a), int(ids[b])) for a, b in zip(*np.nonzero(s >= threshold - 1e-5), strict=True)}
    assert clear <= pairs(lims, found) <= maybe
    assert (sims >= np.float32(threshold)).all()


def test_thresholds_are_inclusive(binary_data, dense_data) -> None:
    xb, ids, q = binary_data
    binary = VectorIndex.build(xb, ids, metric="hamming", dim=256, policy=POLICY)
    d = int(hamming(q[20:21], xb[20:21])[0, 0])
    assert ids[20] in binary.range_search(q[20:21], d)[2]
    assert ids[20] not in binary.range_search(q[20:21], d - 1)[2]
    xf, fids, qf = dense_data
    dense = VectorIndex.build(xf, fids, metric="inner_product", dim=64, policy=POLICY)
    exact_score = dense.knn(qf[10:11], 1)[0][0, 0]
    assert fids[10] in dense.range_search(qf[10:11], float(exact_score))[2]


@pytest.mark.parametrize("kind", ["flat", "multihash"])
def test_exact_binary_knn_equals_brute_force(binary_data, kind) -> None:
    xb, ids, q = binary_data
    index = VectorIndex.build(xb, ids, metric="hamming", dim=256, policy=POLICY, kind=kind)
    dist, found = index.knn(q, 5)
    d = hamming(q, xb)
    np.testing.assert_array_equal(dist, np.sort(d, axis=1)[:, :5])
    np.testing.assert_array_equal(d[np.arange(NQ)[:, None], found - 100], dist)


@pytest.mark.parametrize(
    "metric,kind",
    [
        ("hamming", "flat"),
        ("hamming", "multihash"),
        ("hamming", "ivf"),
        ("inner_product", "flat"),
        ("inner_product", "hnsw"),
        ("inner_product", "ivf"),
    ],
)
def test_serialised_index_answers_identically(binary_data, dense_data, metric, kind) -> None:
    xb, ids, q = binary_data if metric == "hamming" else dense_data
    dim = 256 if metric == "hamming" else 64
    threshold = 31 if metric == "hamming" else 0.8
    policy = IndexPolicy(multihash_above=0) if kind == "multihash" else POLICY
    index = VectorIndex.build(xb, ids, metric=metric, dim=dim, policy=policy, kind=kind)
    again = VectorIndex.from_bytes(index.to_bytes(), metric=metric, dim=dim, policy=policy)
    assert again.kind == kind and again.ntotal == N
    for a, b in zip(
        index.range_search(q, threshold), again.range_search(q, threshold), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(index.knn(q, 3), again.knn(q, 3), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["flat", "multihash"])
def test_remove_deletes_binary_codes(binary_data, kind) -> None:
    xb, ids, q = binary_data
    index = VectorIndex.build(xb, ids, metric="hamming", dim=256, policy=POLICY, kind=kind)
    index.range_search(q, 31)  # builds the multi-hash tables, which removal must invalidate
    assert index.remove(ids[:2]) == 2 and index.ntotal == N - 2
    lims, _, found = index.range_search(q, 31)
    assert ids[0] not in found and ids[1] not in found and ids[2] in found


def test_hnsw_cannot_remove(dense_data) -> None:
    xb, ids, _ = dense_data
    hnsw = VectorIndex.build(xb, ids, metric="inner_product", dim=64, policy=POLICY, kind="hnsw")
    assert not hnsw.supports_remove and hnsw.remove(ids[:2]) == 0 and hnsw.ntotal == N


def test_multihash_tail_of_later_adds_is_searched(binary_data) -> None:
    xb, ids, q = binary_data
    policy = IndexPolicy(multihash_above=0)
    index = VectorIndex.build(xb[:2000], ids[:2000], metric="hamming", dim=256, policy=policy)
    assert index.kind == "multihash"
    index.range_search(q, 31)  # tables over the first 2000 codes
    index.add(xb[2000:], ids[2000:])  # a tail below TAIL_MIN: scanned, tables kept
    tables = index._mih
    lims, _, found = index.range_search(q, 31)
    assert index._mih is tables and tables.n == 2000
    d = hamming(q, xb)
    truth = {(int(a), int(ids[b])) for a, b in zip(*np.nonzero(d <= 31), strict=True)}
    assert pairs(lims, found) == truth


def test_incremental_add_keeps_the_trained_quantizer(dense_data) -> None:
    xb, ids, q = dense_data
    index = VectorIndex.build(
        xb[:2000], ids[:2000], metric="inner_product", dim=64, policy=POLICY, kind="ivf"
    )
    quantizer = faiss.downcast_index(index.base.quantizer)
    centroids = quantizer.reconstruct_n(0, quantizer.ntotal)
    index.add(xb[2000:], ids[2000:])
    assert index.ntotal == N
    np.testing.assert_array_equal(centroids, quantizer.reconstruct_n(0, quantizer.ntotal))
    assert ids[2500] in index.knn(xb[2500:2501], 1)[1]


def test_range_via_knn_is_exact_even_past_k_max(binary_data) -> None:
    """The GPU range-search strategy, run here on a CPU flat index."""
    xb, ids, q = binary_data
    flat = faiss.IndexBinaryFlat(256)
    flat.add(xb)
    cpu = VectorIndex.build(xb, ids, metric="hamming", dim=256, policy=POLICY, kind="flat")
    for threshold, k_max in ((31, 2048), (120, 16)):
        lims, _, pos, unresolved = range_via_knn(
            flat.search, q, lambda s, t=threshold: s <= t, N, k_start=4, k_max=k_max
        )
        resolved = [i for i in range(NQ) if i not in set(unresolved.tolist())]
        c_lims, _, c_ids = cpu.range_search(q, threshold)
        for i in resolved:
            assert set(ids[pos[lims[i] : lims[i + 1]]]) == set(c_ids[c_lims[i] : c_lims[i + 1]])
        if k_max == 16:
            assert len(unresolved) > 0  # many codes within 120 bits: left to the CPU


def test_policy_picks_kinds_by_size() -> None:
    p = IndexPolicy(approximate_above=1000, multihash_above=100)
    assert p.kind_for("hamming", 50) == "flat"
    assert p.kind_for("hamming", 500) == "multihash"
    assert p.kind_for("hamming", 5000) == "multihash"
    assert p.kind_for("inner_product", 500) == "flat"
    assert p.kind_for("inner_product", 5000) == "hnsw"
    assert (
        IndexPolicy(approximate_above=10, dense_approximate="ivf").kind_for("inner_product", 11)
        == "ivf"
    )
    with pytest.raises(ConfigError, match="`approximate_above` must be >= 0 or None; got -1"):
        IndexPolicy(approximate_above=-1)
    with pytest.raises(ConfigError, match="unknown IndexPolicy keys"):
        IndexPolicy.from_dict({"nlist": 3})


def test_codes_of_the_wrong_shape_are_refused(binary_data) -> None:
    xb, ids, _ = binary_data
    index = VectorIndex.build(xb, ids, metric="hamming", dim=256, policy=POLICY)
    with pytest.raises(ValueError, match=r"codes must be a \(N, 32\) uint8 array"):
        index.range_search(np.zeros((1, 16), np.uint8), 31)
