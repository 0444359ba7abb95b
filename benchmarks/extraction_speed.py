"""FineXtract on a LoRA fine-tune: our batched single-network path vs the official code's loop,
each at its own best batch.

- official loop: two separate pipelines (a pretrained UNet and the fine-tuned UNet with its
  adapter), two forwards per denoising step; timed at batch 5 (the official script as shipped)
  and at every batch of a ladder up to the largest that fits (`BATCHES`, capped at N);
- ours: one network, adapter off for half of one batched forward and on for the other half
  (`LoraPair`), at batch 5 and over the same ladder.
Each path's best batch is its fastest rung (on a GPU the ladder stops at the first batch that
runs out of memory). Outputs are asserted identical (same seeds) before any time is reported.

    OMP_NUM_THREADS=1 python benchmarks/extraction_speed.py [--quick]   # CPU: CPU seconds
    python benchmarks/extraction_speed.py --device cuda                 # GPU: wall seconds

Last line: `speedup batched_vs_two_pipelines=<r>` -- ours at its best batch vs the official loop
at *its* best batch (the official loop can batch too); the batch-5 ratio is printed beside.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from dmsec.extract import ExtractConfig, generate
from dmsec.models.pair import FullPair, LoraPair
from dmsec.zoo.build import build_zoo

# batch ladder for each path's best batch (capped at N; the GPU stops at the first OOM)
BATCHES = (5, 10, 25, 50, 100, 200, 400)
times: dict[tuple[str, int], float] = {}


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    """Best of `repeats` calls: wall seconds on a GPU (synchronised); on CPU this process's CPU
    seconds, so other jobs sharing the cores do not distort the comparison (run it with one
    thread, OMP_NUM_THREADS=1, on a shared box)."""
    cuda = torch.cuda.is_available()
    clock = time.perf_counter if cuda else time.process_time
    best, out = float("inf"), None
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = clock()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, clock() - t0)
    assert out is not None
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    n = args.n_samples or (20 if args.quick else 100)
    if args.device.startswith("cuda"):
        # exact float32 on both paths: TF32 kernels round differently per batch size
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    repeats = args.repeats or 2

    zoo = build_zoo("small" if args.quick else "full", device=args.device)
    entry = zoo.select(method="lora", protected=True)[0]
    ft = zoo.load(entry.name, device=args.device)
    pretrained = zoo.load("base", device=args.device)  # the official loop's separate first pipeline
    ours = LoraPair(ft)
    official = FullPair(pretrained, copy.deepcopy(ft))
    what = "wall seconds" if args.device.startswith("cuda") else f"CPU seconds, {torch.get_num_threads()} threads"  # fmt: skip
    print(f"{entry.name} on {args.device}: {n} generations x 50 DDIM steps, best of {repeats} ({what})")  # fmt: skip

    def run(pair, batch):
        cfg = ExtractConfig(w=5.0, k=0.0, n_samples=n, batch_size=batch, seed=0)
        with torch.inference_mode():
            return generate(pair, cfg)

    for pair in (official, ours):  # warm-up: first calls pay one-off costs (allocation, kernels)
        cfg = ExtractConfig(w=5.0, k=0.0, n_samples=5, batch_size=5, seed=0, steps=2)
        with torch.inference_mode():
            generate(pair, cfg)
    ladder = [b for b in BATCHES if b < n] + [n]
    best: dict[str, tuple[int, float]] = {}
    reference = None
    print(f"{'path':<30}{'batch':>7}{'seconds':>10}")
    for label, pair in (("official loop (2 pipelines)", official), ("ours (1 network)", ours)):
        for batch in sorted({5, *ladder}):
            try:
                seconds, out = timed(lambda pair=pair, batch=batch: run(pair, batch), repeats)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                print(f"{label:<30}{batch:>7}{'OOM':>10}")
                break
            if reference is None:
                reference = out
            diff = (out - reference).abs().max().item()
            assert diff < 1e-3, f"{label} at batch {batch} differs from the official loop by {diff}"
            print(f"{label:<30}{batch:>7}{seconds:>10.2f}   max |diff| vs official batch 5 {diff:.1e}", flush=True)  # fmt: skip
            times[(label, batch)] = seconds
            if label not in best or seconds < best[label][1]:
                best[label] = (batch, seconds)
    (b_off, t_off), (b_ours, t_ours) = best["official loop (2 pipelines)"], best["ours (1 network)"]
    t_off5, t_ours5 = times[("official loop (2 pipelines)", 5)], times[("ours (1 network)", 5)]
    print(f"\n{'path':<44}{'seconds':>9}{'vs official best':>18}{'vs official b5':>16}")
    for name, t in (("official loop, batch 5 (as shipped)", t_off5), (f"official loop, its best batch {b_off}", t_off),
                    ("ours, batch 5", t_ours5), (f"ours, its best batch {b_ours}", t_ours)):  # fmt: skip
        print(f"{name:<44}{t:>9.2f}{t_off / t:>17.2f}x{t_off5 / t:>15.2f}x")
    print(f"speedup vs the official batch-5 script: {t_off5 / t_ours:.2f}x (for reference only)")
    print(f"speedup batched_vs_two_pipelines={t_off / t_ours:.2f}")


if __name__ == "__main__":
    main()
