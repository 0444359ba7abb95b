"""GPU FAISS gives the same answers as the CPU index (skipped without faiss-gpu and a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from dmsec.match.faiss_index import VectorIndex
from dmsec.match.gpu import gpu_faiss_available
from dmsec.match.index_policy import IndexPolicy

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_faiss_available(), reason="needs faiss with GPU support and a GPU"),
]


@pytest.mark.parametrize("metric", ["hamming", "inner_product"])
def test_gpu_flat_search_equals_cpu(metric: str) -> None:
    rng = np.random.default_rng(0)
    if metric == "hamming":
        xb = rng.integers(0, 256, (20_000, 32), dtype=np.uint8)
        q, dim, threshold = xb[:200].copy(), 256, 100
    else:
        xb = rng.standard_normal((20_000, 64)).astype(np.float32)
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        q, dim, threshold = xb[:200].copy(), 64, 0.3
    ids = np.arange(20_000, dtype=np.int64) * 3
    kwargs = dict(metric=metric, dim=dim, policy=IndexPolicy(), kind="flat")
    cpu = VectorIndex.build(xb, ids, use_gpu=False, **kwargs)
    gpu = VectorIndex.build(xb, ids, use_gpu=True, **kwargs)
    c_lims, _, c_ids = cpu.range_search(q, threshold)
    g_lims, _, g_ids = gpu.range_search(q, threshold)
    np.testing.assert_array_equal(c_lims, g_lims)
    for i in range(len(q)):
        assert set(c_ids[c_lims[i] : c_lims[i + 1]]) == set(g_ids[g_lims[i] : g_lims[i + 1]])
    c_scores, c_knn = cpu.knn(q, 5)
    g_scores, g_knn = gpu.knn(q, 5)
    np.testing.assert_allclose(c_scores, g_scores, atol=1e-4)
    assert (c_knn[:, 0] == g_knn[:, 0]).all()
