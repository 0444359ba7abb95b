"""benchmarks/throughput.py (FineXtract capacity at SD-1.5 size): its configs are SD-1.5's, its
extrapolation is exact on linear costs, and its quick path runs end to end through its own CLI
(on CPU; the `gpu` test runs the same quick path on CUDA in fp16)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "throughput.py"
LAST = re.compile(r"ckpt/hour N=(\d+) ours=([\d.]+) official=([\d.]+)")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("throughput"), importlib.import_module("sd15_pair")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_sd15_shapes_match_the_released_checkpoint(bench):
    _, sd = bench
    with torch.device("meta"):  # shapes only: no memory, no init time
        base = sd.build_handle(sd.SD15, lora_rank=None)
        tuned = sd.build_handle(sd.SD15, lora_rank=16)
    counts = [sum(p.numel() for p in m.parameters()) for m in base.modules()]
    assert counts == [859_520_964, 123_060_480, 83_653_863]  # UNet, CLIP text, VAE of SD-1.5
    assert base.sample_shape == (4, 64, 64)
    from dmsec.models.lora import tuner_layers

    # 16 transformer blocks x 2 attentions x (to_q, to_k, to_v, to_out.0), rank 16 each
    layers = tuner_layers(tuned.network)
    assert len(layers) == 128 and all(layer.r["default"] == 16 for layer in layers)


def test_extrapolation_is_exact_for_linear_costs(bench):
    tp, _ = bench

    def run(k: int) -> dict[str, float]:  # UNet 0.5 s/step, VAE 2 s, text 0.1 s, other 0.3 + 0.05 k
        return {"unet": 0.5 * k, "vae": 2.0, "text": 0.1, "total": 0.5 * k + 2.1 + 0.3 + 0.05 * k}

    out = tp.extrapolate(run(2), run(10), (2, 10), 50)
    assert out == pytest.approx({"unet": 25.0, "vae": 2.0, "text": 0.1, "total": 29.9})
    assert tp.batch_sizes(500, 64) == [64] * 7 + [52]
    assert tp.batch_sizes(100, 500) == [100]


def _quick(*extra: str) -> list[str]:
    cmd = [sys.executable, str(SCRIPT), "--quick", "--n", "10,5", "--steps", "10", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
    return proc.stdout.strip().splitlines()


@pytest.mark.slow
def test_quick_run_reports_both_paths_and_the_last_line():
    lines = _quick("--full", "--device", "cpu")
    assert any(line.startswith("ε agrees with the official loop") for line in lines)
    rows = [line.split() for line in lines if re.match(r"(official|ours)\s+\d+\s", line)]
    assert sorted((r[0], r[1]) for r in rows) == [
        ("official", "10"), ("official", "5"), ("ours", "10"), ("ours", "5")
    ]  # fmt: skip
    assert all(float(r[3]) > 0 and r[5] == "n/a" for r in rows)  # seconds; no GPU peak on CPU
    assert sum(line.strip().startswith("measured") for line in lines) == 4  # --full ran all N
    match = LAST.match(lines[-1])
    assert match and match.group(1) == "10" and float(match.group(2)) > 0
    assert lines[-1].endswith("[cpu quick: scaled-down model, not the capacity]")


@pytest.mark.gpu
def test_quick_run_on_cuda_in_fp16():
    lines = _quick("--device", "cuda")
    assert any("torch.float16" in line for line in lines)
    assert any(line.startswith("batch: ours") and "from free memory" in line for line in lines)
    rows = [line.split() for line in lines if re.match(r"(official|ours)\s+\d+\s", line)]
    assert len(rows) == 4 and all(r[5] != "n/a" and float(r[5]) >= 0 for r in rows)  # peak GiB
    assert LAST.match(lines[-1]) and "cuda quick" in lines[-1]
