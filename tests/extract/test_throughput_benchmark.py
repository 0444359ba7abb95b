"""benchmarks/throughput.py (FineXtract capacity at SD-1.5 size): its configs are SD-1.5's, its
extrapolation is exact on linear costs, and its quick path runs end to end through its own CLI
(on CPU; the `gpu` test runs the same quick path on CUDA in fp16)."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "throughput.py"
LAST = re.compile(r"ckpt/hour N=(\d+) ours=([\d.]+) official=([\d.]+) official_batch5=([\d.]+)")


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


TINY_ARGS = ("--quick", "--device", "cpu", "--n", "12,10", "--steps", "6")


@pytest.fixture
def tiny(bench, monkeypatch):
    """The benchmark's module with its quick shapes shrunk further (same architecture, seconds)."""
    tp, sd = bench
    shapes = sd.Shapes("tiny SD-1.5", 64, (8, 16, 16, 16), 8, (8, 8, 8, 8), 8, 16, 1, 2)
    monkeypatch.setattr(tp, "QUICK", shapes)
    threads = torch.get_num_threads()
    yield tp, sd, shapes
    torch.set_num_threads(threads)  # main() pins one thread on CPU


def test_component_clock_and_path_costs_on_a_tiny_pair(tiny):
    tp, sd, shapes = tiny
    ours, official = sd.build_pairs(shapes, torch.device("cpu"), torch.float32)
    assert sd.check_agreement(ours, official, torch.float32).startswith("ε agrees")
    with tp.ComponentClock(official) as clock:
        times, images = tp.run_batch(official, clock, 3, 2)
    assert images.shape == (3, 3, 64, 64) and torch.isfinite(images).all()
    assert set(times) == {"total", "unet", "vae", "text"}
    assert 0 < times["unet"] < times["total"] and times["vae"] > 0 and times["text"] > 0
    assert not official.pretrained.network._forward_pre_hooks  # the clock's hooks are gone

    args = argparse.Namespace(ns=[12, 5], ks=(2, 3), steps=6)
    rows, pool = tp.path_costs("official", official, 5, 0, args)
    assert [(r.n, r.batches) for r in rows] == [(12, [5, 5, 2]), (5, [5])]
    assert len(pool) == 5 + 2  # the k2-step images of each batch size, for clustering
    per_batch = {r.n: r.seconds for r in rows}
    # N=12 is two 5-batches and one 2-batch: more than twice N=5's cost, part for part
    assert per_batch[12]["total"] > 2 * per_batch[5]["total"]
    assert per_batch[12]["unet"] > 2 * per_batch[5]["unet"] > 0
    row = rows[1].row().split()
    assert row[:3] == ["official", "5", "1x5"] and row[5] == "n/a"  # no GPU peak on CPU
    assert float(row[4]) == pytest.approx(3600 / per_batch[5]["total"], rel=1e-2)
    assert tp.time_clustering(pool, 12, torch.device("cpu")) > 0  # pool cycled to 12


def test_main_prints_the_table_ratios_and_the_issues_last_line(tiny, monkeypatch, capsys):
    tp, _, _ = tiny
    monkeypatch.setattr(sys, "argv", ["throughput.py", *TINY_ARGS])
    tp.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("tiny SD-1.5 on cpu (torch.float32)")
    assert any(line.startswith("batch: ours 12 (the library's CPU default)") for line in lines)
    assert any(line.startswith("batch: ours 12 (the library's CPU default); official 12 (the library's CPU default)") for line in lines)  # fmt: skip
    rows = {
        (r[0], int(r[1])): r
        for r in (line.split() for line in lines)
        if r and r[0] in ("ours", "official", "official5") and r[1].isdigit()
    }
    assert set(rows) == {(p, n) for p in ("ours", "official", "official5") for n in (12, 10)}
    assert rows["ours", 12][2] == rows["official", 12][2] == "1x12"  # each path at its best batch
    assert rows["official5", 12][2] == "3x5+2"  # the official script as shipped
    for n in (12, 10):  # the ratio line is the rows' seconds, side by side
        ratio = float(rows["ours", n][4]) / float(rows["official", n][4])  # ckpt/h: 2 decimals
        ratio5 = float(rows["ours", n][4]) / float(rows["official5", n][4])
        line = next(line for line in lines if line.startswith(f"N={n}: ours "))
        assert float(line.split()[2].rstrip("x")) == pytest.approx(ratio, rel=0.05)
        assert f"best batch ({12})" in line
        assert float(line.split(", ")[1].split("x")[0]) == pytest.approx(ratio5, rel=0.05)
        assert "checkpoints a day: 10,000 a day need" in line
    match = LAST.fullmatch(lines[-1].split(" [")[0])
    assert match and match.group(1) == "12"
    assert float(match.group(2)) == pytest.approx(float(rows["ours", 12][4]), abs=0.011)
    assert float(match.group(3)) == pytest.approx(float(rows["official", 12][4]), abs=0.011)
    assert float(match.group(4)) == pytest.approx(float(rows["official5", 12][4]), abs=0.011)
    assert lines[-1].endswith(" [cpu quick: scaled-down model, not the capacity]")


def test_the_sd15_run_refuses_a_cpu(bench, monkeypatch):
    tp, _ = bench
    monkeypatch.setattr(sys, "argv", ["throughput.py", "--device", "cpu"])
    with pytest.raises(SystemExit):
        tp.parse_args()


def _quick(*extra: str) -> list[str]:
    cmd = [sys.executable, str(SCRIPT), "--quick", "--n", "10,5", "--steps", "10", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
    return proc.stdout.strip().splitlines()


@pytest.mark.slow
def test_quick_run_reports_both_paths_and_the_last_line():
    lines = _quick("--full", "--device", "cpu")
    assert any(line.startswith("ε agrees with the official loop") for line in lines)
    rows = [line.split() for line in lines if re.match(r"(official5?|ours)\s+\d+\s", line)]
    assert sorted((r[0], r[1]) for r in rows) == [
        ("official", "10"), ("official", "5"), ("official5", "10"), ("official5", "5"), ("ours", "10"), ("ours", "5")
    ]  # fmt: skip
    assert all(float(r[3]) > 0 and r[5] == "n/a" for r in rows)  # seconds; no GPU peak on CPU
    assert sum(line.strip().startswith("measured") for line in lines) == 6  # --full ran all N
    match = LAST.match(lines[-1])
    assert match and match.group(1) == "10" and float(match.group(2)) > 0
    assert lines[-1].endswith("[cpu quick: scaled-down model, not the capacity]")


@pytest.mark.gpu
def test_quick_run_on_cuda_in_fp16():
    lines = _quick("--device", "cuda")
    assert any("torch.float16" in line for line in lines)
    assert any(line.startswith("batch: ours") and "from free memory" in line for line in lines)
    rows = [line.split() for line in lines if re.match(r"(official5?|ours)\s+\d+\s", line)]
    assert len(rows) == 6 and all(r[5] != "n/a" and float(r[5]) >= 0 for r in rows)  # peak GiB
    assert LAST.match(lines[-1]) and "cuda quick" in lines[-1]
