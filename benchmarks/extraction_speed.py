"""FineXtract on a LoRA fine-tune: our batched single-network path vs the official code's loop.

- official loop: two separate pipelines (a pretrained UNet and the fine-tuned UNet with its
  adapter), two forwards per denoising step, generations in batches of 5 (the official default);
- ours, same batch: one network, adapter off for half of one batched forward and on for the
  other half (`LoraPair`), batches of 5;
- ours, as shipped: the same path with the default batch (64 on CPU, from free memory on GPU).
Outputs are asserted identical (same seeds) before any time is reported.

    python benchmarks/extraction_speed.py [--quick] [--device cuda]

Last line: `speedup batched_vs_two_pipelines=<r>` — ours as shipped vs the official loop as shipped.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from dmsec.extract import ExtractConfig, generate
from dmsec.models.pair import FullPair, LoraPair
from dmsec.zoo.build import build_zoo


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
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
    repeats = args.repeats or (1 if args.quick else 2)

    zoo = build_zoo("small" if args.quick else "full", device=args.device)
    entry = zoo.select(method="lora", protected=True)[0]
    ft = zoo.load(entry.name, device=args.device)
    pretrained = zoo.load("base", device=args.device)  # the official loop's separate first pipeline
    ours = LoraPair(ft)
    official = FullPair(pretrained, copy.deepcopy(ft))
    print(f"{entry.name} on {args.device}: {n} generations x 50 DDIM steps, best of {repeats}")

    def run(pair, batch):
        cfg = ExtractConfig(w=5.0, k=0.0, n_samples=n, batch_size=batch, seed=0)
        with torch.inference_mode():
            return generate(pair, cfg)

    t_official, out_official = timed(lambda: run(official, 5), repeats)
    t_same, out_same = timed(lambda: run(ours, 5), repeats)
    t_ours, out_ours = timed(lambda: run(ours, None), repeats)
    for name, out in (("ours, batch 5", out_same), ("ours, default batch", out_ours)):
        diff = (out - out_official).abs().max().item()
        assert diff < 1e-3, f"{name} differs from the official loop by {diff}"
        print(f"  identical outputs: {name} vs official (max |diff| {diff:.1e})")
    print(f"{'path':<44}{'seconds':>9}{'vs official':>13}")
    print(f"{'official loop (2 pipelines, batch 5)':<44}{t_official:>9.2f}{1.0:>12.2f}x")
    print(f"{'ours, one network, batch 5':<44}{t_same:>9.2f}{t_official / t_same:>12.2f}x")
    print(f"{'ours, one network, default batch':<44}{t_ours:>9.2f}{t_official / t_ours:>12.2f}x")
    print(f"speedup batched_vs_two_pipelines={t_official / t_ours:.2f}")


if __name__ == "__main__":
    main()
