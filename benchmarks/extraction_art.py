"""FineXtract vs direct sampling on the art zoo, settings chosen on the tuning split and
reported on the disjoint reporting split (`python benchmarks/extraction.py --zoo art`).

Protocol, fixed before any figure was seen:
1. Tuning split (fruit-twemoji subject set, openmoji-a style set): FineXtract with the official
   text-conditional guidance ε̃ = ε_pre(∅) + w·(ε_ft(c) − ε_pre(∅)) + k·ε_pre(∅) (c = the
   instance prompt through the fine-tune's own text encoder, ∅ through the base's), the paper's
   k per kind (full −0.02, LoRA 0), over a w grid, on the *light* fine-tunes; per kind (full =
   DreamBooth with and without prior preservation, lora) the w with the best mean A-ESR (ties:
   the best AS) is chosen.
2. Reporting split (marine-noto subject set, fluent-a style set, an artist never used for
   tuning): FineXtract at the chosen (w, k) and the baseline — CFG 3 sampling of the fine-tune
   with the same prompt and the same initial noise — per checkpoint and kind, light and heavy.
Both methods: N generations (DDIM 50, η 0), decoded by the VAE, clustered in the art similarity
space (`dmsec.metrics.ART`, N0 = the number of training images); A-ESR at the calibrated copy
threshold, AS as in the paper.

Last line: `A-ESR finextract=<x> baseline=<y>` on the light fine-tunes of the reporting split.
`--quick`: N = 32, w in (1, 2, 3), the reporting split's light fine-tunes only (PEFT layout).
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch

from dmsec import metrics
from dmsec.extract import ExtractConfig
from dmsec.extract.finextract import PAPER_DEFAULTS, cluster_generations, generate
from dmsec.models.loading import load_pair
from dmsec.zoo.art_build import build_art_zoo

W_GRID = (1.0, 1.5, 2.0, 3.0, 5.0)
QUICK_W_GRID = (1.0, 2.0, 3.0)


def kind_of(method: str | None) -> str:
    return "lora" if method == "lora" else "full"


def run(args) -> None:
    space = metrics.ART
    n = args.n_samples or (32 if args.quick else 64)
    grid = QUICK_W_GRID if args.quick else W_GRID
    seed = int((args.seeds or "0").split(",")[0])
    started = time.perf_counter()
    zoo = build_art_zoo("art", device=args.device)
    print(f"zoo {zoo.root.name}; N={n} generations per run, seed {seed}; art copy threshold "
          f"{space.threshold():.4f}; baseline: CFG 3 on the fine-tune, same prompt and noise")  # fmt: skip
    pairs: dict[str, object] = {}

    def scores(name: str, method: str, w: float | None = None) -> tuple[float, float]:
        e = zoo.entry(name)
        if name not in pairs:
            pairs[name] = load_pair(zoo.path(name), device=args.device)
        pair = pairs[name]
        k = PAPER_DEFAULTS[kind_of(e.method)][1]
        train = zoo.train_images(name)
        c = ExtractConfig(n_samples=n, seed=seed, n_groups=len(train), similarity="art",
                          w=w, k=k, guidance_scale=3.0)  # fmt: skip
        with torch.inference_mode():
            cands = cluster_generations(generate(pair, c, method), c.resolved(pair.kind)).images  # type: ignore[arg-type]
        return (metrics.extraction_success_rate(train, cands, None, space),
                metrics.average_similarity(train, cands, space))  # fmt: skip

    # 1. tuning split: the w sweep on the light protected fine-tunes
    tuning = [
        e
        for e in zoo.select(protected=True, split="tuning", strength="light")
        if e.layout != "kohya"
    ]
    sweep: dict[tuple[str, float], list[tuple[float, float]]] = defaultdict(list)
    print(f"\n[tuning split] w sweep on {len(tuning)} light fine-tunes: A-ESR / AS per checkpoint")
    for e in tuning:
        cells = []
        for w in grid:
            a, s = scores(e.name, "finextract", w)
            sweep[(kind_of(e.method), w)].append((a, s))
            cells.append(f"w={w:g}: {a:.2f}/{s:.3f}")
        b = scores(e.name, "baseline")
        print(
            f"  {e.name:<30} " + "  ".join(cells) + f"   baseline {b[0]:.2f}/{b[1]:.3f}", flush=True
        )
    chosen = {}
    for kind in ("full", "lora"):
        options = [(np.mean([r[0] for r in sweep[(kind, w)]]), np.mean([r[1] for r in sweep[(kind, w)]]), w)
                   for w in grid if sweep[(kind, w)]]  # fmt: skip
        if options:
            a, s, w = max(options)
            chosen[kind] = (w, PAPER_DEFAULTS[kind][1])
            print(f"  chosen on the tuning split: {kind} w={w:g} k={PAPER_DEFAULTS[kind][1]:g} "
                  f"(mean A-ESR {a:.2f}, AS {s:.3f})")  # fmt: skip

    # 2. reporting split: chosen w vs the baseline, every protected fine-tune
    print("\n[reporting split] FineXtract at the chosen (w, k) vs the baseline")
    print(f"{'checkpoint':<32}{'kind':<8}{'layout':<10}{'strength':<9}{'w':>4}{'FX A-ESR':>10}"
          f"{'base A-ESR':>11}{'FX AS':>8}{'base AS':>9}")  # fmt: skip
    by: dict[tuple[str, str], list[tuple[float, float, float, float]]] = defaultdict(list)
    reporting = zoo.select(protected=True, split="reporting")
    if args.quick:  # the light fine-tunes the last line reports, one layout each
        reporting = [e for e in reporting if e.strength == "light" and e.layout != "kohya"]
    for e in reporting:
        kind = kind_of(e.method)
        if kind not in chosen:
            continue
        try:
            fx = scores(e.name, "finextract", chosen[kind][0])
            bl = scores(e.name, "baseline")
        except Exception as exc:  # a layout the loader refuses is reported, not hidden
            print(f"{e.name:<32}{e.set_kind:<8}{e.layout:<10}error: {exc}")
            continue
        by[(e.strength or "", e.method or "")].append((*fx, *bl))
        print(f"{e.name:<32}{e.set_kind:<8}{e.layout:<10}{e.strength:<9}{chosen[kind][0]:>4g}"
              f"{fx[0]:>10.2f}{bl[0]:>11.2f}{fx[1]:>8.3f}{bl[1]:>9.3f}", flush=True)  # fmt: skip
    print("\n[reporting split] by strength and recipe (mean A-ESR finextract / baseline)")
    for (strength, method), rows in sorted(by.items()):
        r = np.mean(rows, axis=0)
        print(f"  {strength:<6}{method:<6} {r[0]:.2f} / {r[2]:.2f}   AS {r[1]:.3f} / {r[3]:.3f}")
    light = [r for (st, _), rows in by.items() if st == "light" for r in rows]
    fx, bl = (float(np.mean([r[i] for r in light])) if light else float("nan") for i in (0, 2))
    print(f"{time.perf_counter() - started:.0f} s in all")
    print(f"A-ESR finextract={fx:.2f} baseline={bl:.2f}")
