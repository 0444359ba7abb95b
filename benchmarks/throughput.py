"""Capacity: FineXtract checkpoints per hour per GPU on a Stable-Diffusion-1.5-sized LoRA pair.

Models are built in code (`sd15_pair.py`) with SD-1.5's configs and random weights:
UNet2DConditionModel (859.5M parameters) with a rank-16 LoRA on its attention projections, an
AutoencoderKL (83.7M) and a CLIP text encoder (123.1M); 512x512, 50 DDIM steps, w 5, fp16 on a GPU.
Both paths run `dmsec.extract.generate` and `cluster_generations` from the same seeds:
- official loop: two pipelines (a pretrained copy and the fine-tune, `FullPair`), two UNet
  forwards per step, each batch decoded whole; timed twice: at batch 5 (the official script as
  shipped, row `official5`) and at its own best batch (row `official`), the largest that fits,
  found by the same rule as ours' batch -- the official loop can batch too, so the headline
  ratio is against that row;
- ours: one network, adapter off for half of one batched forward and on for the other half
  (`LoraPair`), batch from free GPU memory (measured per generation), VAE decoding one image at a
  time (`vae.enable_slicing()`) so that batch fits.
One pair forward of both paths must agree, and differ from the adapter-off model, before any time
is reported.

Method (so the real-size run fits a few minutes of device time): each batch size a path uses is
run for real (noise, text encoding, DDIM, VAE decoding, copy to host) at 2 and 10 DDIM steps after
a 1-step warm-up and extrapolated to 50 (`extrapolate`: every step is the same UNet call), then
summed over the N / batch batches; clustering (embedding included) is timed on N generations (the
timed batches' images, cycled if fewer). `--full` also runs all N at 50 steps for real, next to
the extrapolation. UNet, VAE and text encoder are timed inside their forwards (CUDA events, no
synchronisation), "other" is the rest (sampler arithmetic, noise, host copies). The scan's other
stages (pull, LoRA load, match, CGI-DM) are not included.

    python benchmarks/throughput.py            # CUDA: the SD-1.5-sized run (a few minutes on an H200)
    python benchmarks/throughput.py --quick    # CPU: scaled-down models, same code path
    python benchmarks/throughput.py --full     # + all N for real (~10 min on an H200)

On the lent H200 (its image lacks diffusers), from the repository root, once:
    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata
then one call: run(command="bash benchmarks/gpu_throughput.sh", carry=[".whl"], timeout_s=540).

Last line: `ckpt/hour N=<first N> ours=<a> official=<b> official_batch5=<c>` (official: its best
batch; official_batch5: the script as shipped); with `--quick` it ends in
`[cpu quick: scaled-down model, not the capacity]`: a quick figure is never the capacity.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils import logging as diffusers_logging
from sd15_pair import ATTENTION_PROJECTIONS, QUICK, SD15, build_pairs, check_agreement

from dmsec.extract import ExtractConfig, cluster_generations, default_batch_size, generate
from dmsec.models.pair import ModelPair, instance_condition
from dmsec.models.stable_diffusion import StableDiffusionHandle

OFFICIAL_BATCH = 5
N0 = 10  # training images assumed known (clustering's N0), a typical LoRA set


class ComponentClock:
    """Seconds spent inside a pair's UNet, VAE decoder and text encoder forwards (CUDA events on
    a GPU, so nothing is synchronised; CPU time on CPU, as `now`). A context: hooks live inside."""

    def __init__(self, pair: ModelPair) -> None:
        self.cuda = pair.device.type == "cuda"
        handles = {id(h): h for h in (pair.pretrained, pair.finetuned_handle())}.values()
        self.modules = [
            (name, module)
            for h in handles
            if isinstance(h, StableDiffusionHandle)
            for name, module in (("unet", h.network), ("text", h.text_encoder),
                                 ("vae", h.vae.post_quant_conv), ("vae", h.vae.decoder))
        ]  # fmt: skip
        self.spans: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
        self.open: dict[str, Any] = {}
        self.hooks: list[Any] = []

    def __enter__(self) -> ComponentClock:
        for name, module in self.modules:
            self.hooks.append(module.register_forward_pre_hook(lambda *_, n=name: self._mark(n)))
            self.hooks.append(module.register_forward_hook(lambda *_, n=name: self._mark(n, 1)))
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self.hooks:
            hook.remove()

    def _mark(self, name: str, end: int = 0) -> None:
        mark: Any = torch.cuda.Event(enable_timing=True) if self.cuda else time.process_time()
        if self.cuda:
            mark.record()
        if end:
            self.spans[name].append((self.open.pop(name), mark))
        else:
            self.open[name] = mark

    def take(self) -> dict[str, float]:
        """Seconds per name since the last call."""
        if self.cuda:
            torch.cuda.synchronize()
        out = {
            name: sum(s.elapsed_time(e) / 1e3 if self.cuda else e - s for s, e in spans)
            for name, spans in self.spans.items()
        }
        self.spans.clear()
        return out


def now(device: torch.device) -> float:
    """Seconds: wall clock after synchronising on a GPU; on CPU this process's CPU time (one
    thread), so other jobs sharing the cores do not distort the CPU figures."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def config(n: int, batch: int, steps: int) -> ExtractConfig:
    return ExtractConfig(w=5.0, k=0.0, n_samples=n, batch_size=batch, steps=steps, seed=0,
                         n_groups=N0, similarity="art")  # fmt: skip


def run_batch(
    pair: ModelPair, clock: ComponentClock, batch: int, steps: int
) -> tuple[dict[str, float], torch.Tensor]:
    """One batch of `batch` generations at `steps` DDIM steps: seconds ("total") and parts."""
    clock.take()
    t0 = now(pair.device)
    images = generate(pair, config(batch, batch, steps))
    times = {"total": now(pair.device) - t0} | clock.take()
    return times, images


def extrapolate(
    t1: dict[str, float], t2: dict[str, float], ks: tuple[int, int], steps: int
) -> dict[str, float]:
    """A batch's seconds at `steps` DDIM steps from its runs at k1 and k2 steps.

    The UNet runs once per step (its rate pooled over both runs), VAE and text encoder once per
    batch (their mean); the rest (sampler arithmetic per step, noise and host copies per batch)
    is fitted as a + b·k through the two runs.
    """
    (k1, k2), per_batch = ks, ("vae", "text")
    out = {"unet": (t1.get("unet", 0.0) + t2.get("unet", 0.0)) / (k1 + k2) * steps}
    out |= {p: (t1.get(p, 0.0) + t2.get(p, 0.0)) / 2 for p in per_batch}
    o1, o2 = (t["total"] - sum(t.get(p, 0.0) for p in ("unet", *per_batch)) for t in (t1, t2))
    out["total"] = sum(out.values()) + o1 + (o2 - o1) / (k2 - k1) * (steps - k1)
    return out


@dataclass
class BatchCost:
    """A batch size's cost at the target step count (extrapolated) and its peak memory."""

    seconds: dict[str, float]
    peak_bytes: int | None
    images: torch.Tensor  # the batch's generations at k2 steps (clustered later)


def batch_cost(
    pair: ModelPair, clock: ComponentClock, batch: int, ks: tuple[int, int], steps: int
) -> BatchCost:
    """Run `batch` generations at 1 (warm-up), k1 and k2 steps; extrapolate to `steps`."""
    cuda = pair.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(pair.device)
    run_batch(pair, clock, batch, 1)
    (t1, _), (t2, images) = (run_batch(pair, clock, batch, k) for k in ks)
    peak = torch.cuda.max_memory_allocated(pair.device) if cuda else None
    return BatchCost(extrapolate(t1, t2, ks, steps), peak, images)


def pick_batch(pair: ModelPair, n_max: int) -> tuple[int, str]:
    """A path's batch: on CUDA from free memory (measured per generation), else the CPU default
    (the same rule for ours and the official loop).

    Peak memory above what is allocated is measured for one pair forward (2b samples) and for
    decoding b latents, at b = 1 and 8; both are linear in b, and never overlap in time.
    """
    if pair.device.type != "cuda":
        return min(n_max, default_batch_size(pair)), "the library's CPU default"
    handle, c = pair.finetuned_handle(), instance_condition(pair)
    x = torch.randn((8, *pair.sample_shape), device=pair.device, dtype=handle.dtype)
    t = torch.full((8,), 500, device=pair.device)
    cond_pre, cond_ft = pair.encode_pre([None] * 8), pair.encode_ft([c] * 8)
    steps = {
        "UNet": lambda b: pair.predict_pair(x[:b], x[:b], t[:b], cond_pre[:b], cond_ft[:b]),
        "VAE": lambda b: handle.decode(x[:b]).cpu(),
    }
    torch.cuda.synchronize(pair.device)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(pair.device)
    budget, fits, costs = 0.6 * free, [], []
    for name, step in steps.items():
        peak = {}
        for b in (1, 8):
            base = torch.cuda.memory_allocated(pair.device)
            torch.cuda.reset_peak_memory_stats(pair.device)
            with torch.inference_mode():
                step(b)
            peak[b] = torch.cuda.max_memory_allocated(pair.device) - base
        per = max(1, (peak[8] - peak[1]) // 7)
        fits.append(int((budget - (peak[1] - per)) // per))
        costs.append(f"{name} {per / 2**20:.0f} MiB")
    batch = max(1, min([n_max, *fits]))
    note = (
        f"from free memory: {free / 2**30:.1f} GiB free, 60% used; per generation "
        f"{', '.join(costs)}; the library's default_batch_size would pick "
        f"{default_batch_size(pair)}"
    )
    return batch, note


def batch_sizes(n: int, batch: int) -> list[int]:
    """The batches `generate` runs for n generations."""
    return [min(batch, n - start) for start in range(0, n, batch)]


def time_clustering(pool: torch.Tensor, n: int, device: torch.device) -> float:
    """Seconds to embed and cluster n generations (the pool, cycled to n)."""
    samples = pool[torch.arange(n) % len(pool)]
    bad = int((~torch.isfinite(samples)).flatten(1).any(1).sum())
    if bad:  # random weights in fp16 can overflow; clustering needs finite pixels
        print(f"{bad} of {n} generations hold non-finite pixels: set to 0.5 for clustering")
        samples = torch.nan_to_num(samples, nan=0.5, posinf=0.5, neginf=0.5)
    t0 = now(device)
    cluster_generations(samples, config(n, n, 1))
    return now(device) - t0


def weight_bytes(pair: ModelPair) -> int:
    """Bytes of every parameter and buffer the pair's handles hold."""
    handles = {id(h): h for h in (pair.pretrained, pair.finetuned_handle())}.values()
    tensors = [t for h in handles for m in h.modules() for t in (*m.parameters(), *m.buffers())]
    return sum(t.numel() * t.element_size() for t in tensors)


PARTS = ("unet", "vae", "text", "cluster")
HEADER = (f"{'path':<10}{'N':>5}{'batches':>11}{'seconds':>10}{'ckpt/h':>10}{'peak GiB':>9}"
          f"{'UNet':>8}{'VAE':>8}{'text':>8}{'cluster':>8}{'other':>8}")  # fmt: skip


@dataclass
class PathCost:
    """One path's cost for N generations: seconds per part and peak memory."""

    label: str
    n: int
    batches: list[int]
    seconds: dict[str, float]
    peak_bytes: int | None

    def row(self) -> str:
        total = self.seconds["total"]
        shares = [self.seconds.get(k, 0.0) / total for k in PARTS]
        other = 1 - sum(self.seconds.get(k, 0.0) for k in PARTS) / total
        mem = f"{self.peak_bytes / 2**30:.2f}" if self.peak_bytes is not None else "n/a"
        sizes = self.batches
        plan = f"{len(sizes)}x{sizes[0]}" + (f"+{sizes[-1]}" if sizes[-1] != sizes[0] else "")
        return (f"{self.label:<10}{self.n:>5}{plan:>11}{total:>10.1f}{3600 / total:>10.2f}"
                f"{mem:>9}" + "".join(f"{v:>8.0%}" for v in [*shares, other]))  # fmt: skip


def path_costs(
    label: str, pair: ModelPair, batch: int, others: int, args: argparse.Namespace
) -> tuple[list[PathCost], torch.Tensor]:
    """Extrapolated cost of each N for one path (clustering added later), and its images.

    `others`: bytes of the other path's models, taken off the peak memory.
    """
    sizes = sorted({s for n in args.ns for s in batch_sizes(n, batch)}, reverse=True)
    with ComponentClock(pair) as clock:
        costs = {s: batch_cost(pair, clock, s, args.ks, args.steps) for s in sizes}
    out = []
    for n in args.ns:
        plan = batch_sizes(n, batch)
        seconds: dict[str, float] = defaultdict(float)
        for s in plan:
            for key, value in costs[s].seconds.items():
                seconds[key] += value
        peaks = [costs[s].peak_bytes for s in plan]
        peak = None if None in peaks else max(p or 0 for p in peaks) - others
        out.append(PathCost(label, n, plan, dict(seconds), peak))
    return out, torch.cat([c.images for c in costs.values()])


def measured(pair: ModelPair, n: int, batch: int, steps: int) -> str:
    """`--full`: all n generations at `steps` steps and their clustering, for real."""
    t0 = now(pair.device)
    images = generate(pair, config(n, batch, steps))
    t_gen = now(pair.device) - t0
    cluster_generations(images, config(n, batch, steps))
    total = now(pair.device) - t0
    return (f"{'  measured':<10}{n:>5}{'(--full)':>11}{total:>10.1f}{3600 / total:>10.2f}"
            f"   generation {t_gen:.1f} s, clustering {total - t_gen:.1f} s")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="scaled-down models (CPU check)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", default="500,100", help="generations per checkpoint, headline first")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--full", action="store_true", help="also run all N generations for real")
    parser.add_argument("--per-day", type=int, default=10_000, help="checkpoints a day to size for")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    if args.device.type != "cuda" and not args.quick:
        parser.error("the SD-1.5-sized run needs a CUDA GPU (hours on CPU); use --quick on CPU")
    if args.steps < 3:
        parser.error(f"--steps must be >= 3; got {args.steps}")
    args.ns = [int(v) for v in args.n.split(",")]
    args.ks = (2, min(10, args.steps))
    return args


def fitted_costs(
    label: str, pair: ModelPair, batch: int, others: int, args: argparse.Namespace
) -> tuple[list[PathCost], torch.Tensor, int]:
    """`path_costs` at a path's own batch, halving it should the memory measured per generation
    fall short (a failed device run costs more than a smaller batch)."""
    while True:
        try:
            return (*path_costs(label, pair, batch, others, args), batch)
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            torch.cuda.empty_cache()
            print(f"out of memory: {label}'s batch halved to {batch}")


def main() -> None:
    args = parse_args()
    device, shapes = args.device, QUICK if args.quick else SD15
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if device.type == "cpu":
        torch.set_num_threads(1)  # two threads thrash when other jobs share the two cores
    diffusers_logging.set_verbosity_error()  # casting random-init models to fp16 is intended

    # 1. models, the agreement check, ours' batch size
    ours, official = build_pairs(shapes, device, dtype)
    size = {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in zip(
        ("UNet", "text encoder", "VAE"), ours.model.modules(), strict=True)}  # fmt: skip
    print(f"{shapes.name} on {device} ({dtype}): UNet {size['UNet']:.1f}M incl. a rank-16 LoRA "
          f"on {', '.join(ATTENTION_PROJECTIONS)}, VAE {size['VAE']:.1f}M, text encoder "
          f"{size['text encoder']:.1f}M; {shapes.image_size}px, {args.steps} DDIM steps, w 5")  # fmt: skip
    print(check_agreement(ours, official, dtype, OFFICIAL_BATCH))
    batch, note = pick_batch(ours, max(args.ns))
    best, best_note = pick_batch(official, max(args.ns))
    print(f"batch: ours {batch} ({note}); official {best} ({best_note}) and "
          f"{OFFICIAL_BATCH} (the official default, row official5)")  # fmt: skip
    print(f"timed: each batch size at {args.ks[0]} and {args.ks[1]} steps after a 1-step "
          f"warm-up, extrapolated to {args.steps}; clustering on N generations of ours, added to "
          f"both paths; peak memory counts only the path's own models")  # fmt: skip

    # 2. each path's batches, then clustering (the same work for both paths)
    rows, _ = path_costs("official5", official, OFFICIAL_BATCH, weight_bytes(ours), args)
    theirs, _, best = fitted_costs("official", official, best, weight_bytes(ours), args)
    mine, pool, batch = fitted_costs("ours", ours, batch, weight_bytes(official), args)
    rows += theirs + mine
    batches = {"ours": (ours, batch), "official": (official, best), "official5": (official, OFFICIAL_BATCH)}  # fmt: skip
    for n in args.ns:
        seconds = time_clustering(pool, n, device)
        for cost in rows:
            if cost.n == n:
                cost.seconds["cluster"] = seconds
                cost.seconds["total"] += seconds
    table = {(c.label, c.n): c.seconds["total"] for c in rows}

    # 3. the table, the capacity, the last line
    print(HEADER)
    for cost in sorted(rows, key=lambda c: (args.ns.index(c.n), c.label)):
        print(cost.row())
        if args.full:
            print(measured(*batches[cost.label], cost.n, args.steps))
    for n in args.ns:
        per_day = 24 * 3600 / table["ours", n]
        print(f"N={n}: ours {table['official', n] / table['ours', n]:.2f}x the official loop at its "
              f"best batch ({best}), {table['official5', n] / table['ours', n]:.2f}x at batch 5; "
              f"one {device.type} scans {per_day:.0f} checkpoints a day: {args.per_day:,} a day "
              f"need {math.ceil(args.per_day / per_day)}")  # fmt: skip
    n = args.ns[0]
    flag = f" [{device.type} quick: scaled-down model, not the capacity]" if args.quick else ""
    print(f"ckpt/hour N={n} ours={3600 / table['ours', n]:.2f} "
          f"official={3600 / table['official', n]:.2f} "
          f"official_batch5={3600 / table['official5', n]:.2f}{flag}")  # fmt: skip


if __name__ == "__main__":
    main()
