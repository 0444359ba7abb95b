"""FineXtract vs the direct-sampling baseline on the tiny zoo: A-ESR and AS, per checkpoint, over
fine-tuning strength and over the guidance scale w.

Both methods get the same N generations per seed from the same initial noise, and the same
clustering (N0 = 5, the number of training images); A-ESR uses the calibrated copy threshold.
FineXtract vs baseline at the default w uses every seed; the other w values of the sweep use
`--sweep-seeds` (default: the first seed), which keeps the default run within 30 min.
The zoo's default (w, k) is `dmsec.zoo.config.ZOO_GUIDANCE` — fixed in code, chosen once from this
sweep — not re-picked at run time.

    python benchmarks/extraction.py            # full zoo, N=128, seeds 0-1   (~25 min on 2 cores)
    python benchmarks/extraction.py --quick    # small zoo, N=64, one seed, short w grid
    python benchmarks/extraction.py --zoo art  # the art zoo: tuning / reporting splits
                                               # (benchmarks/extraction_art.py)

Last line: `A-ESR finextract=<x> baseline=<y>` on the light protected fine-tunes at the default w.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from dmsec import metrics
from dmsec.extract import ExtractConfig
from dmsec.extract.finextract import cluster_generations, generate
from dmsec.models.pair import make_pair
from dmsec.zoo.build import build_zoo
from dmsec.zoo.config import ZOO_GUIDANCE

W_GRID = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
QUICK_W_GRID = (1.0, 1.5, 2.0, 3.0, 5.0)


def scores(train: torch.Tensor, candidates: torch.Tensor) -> tuple[float, float]:
    return metrics.extraction_success_rate(train, candidates), metrics.average_similarity(
        train, candidates
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--zoo", choices=("digits", "art"), default="digits")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--seeds", type=str, default=None, help="comma-separated, e.g. 0,1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sweep-seeds", type=str, default=None,
                        help="seeds for the w values other than the default (default: the first seed)")  # fmt: skip
    args = parser.parse_args()
    if args.zoo == "art":
        import extraction_art  # benchmarks/ is on the path when run as a script

        return extraction_art.run(args)
    n = args.n_samples or (64 if args.quick else 128)
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1")).split(",")]
    grid = QUICK_W_GRID if args.quick else W_GRID
    sweep_seeds = [int(s) for s in args.sweep_seeds.split(",")] if args.sweep_seeds else seeds[:1]

    zoo = build_zoo("small" if args.quick else "full", device=args.device)
    base = zoo.load("base", device=args.device)
    defaults = tuple((kind, w, k) for kind, (w, k) in ZOO_GUIDANCE.items())
    protected_train = torch.cat([zoo.train_images(e.name) for e in zoo.select(protected=True)])
    print(
        f"zoo {zoo.root.name}; N={n} generations per run; seeds {seeds}; copy threshold {metrics.copy_threshold():.4f}"
    )
    print(f"zoo default guidance (w, k): {ZOO_GUIDANCE}; baseline: CFG scale 3 on the fine-tune; "
          f"other w of the sweep on seeds {sweep_seeds}")  # fmt: skip

    # result[(checkpoint, method, w)] -> list over seeds of (A-ESR, AS)
    result: dict[tuple[str, str, float], list[tuple[float, float]]] = defaultdict(list)
    control: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in zoo.fine_tunes:
        pair = make_pair(base, zoo.load(e.name, device=args.device))
        train = zoo.train_images(e.name)
        default_w = dict((kd, w) for kd, w, _ in defaults)[pair.kind]
        ws = sorted(set(grid) | {default_w}) if e.protected else [default_w]
        for seed in sorted(set(seeds) | set(sweep_seeds)):
            cfg = ExtractConfig(n_samples=n, n_groups=len(train), seed=seed, defaults=defaults)
            at_default = seed in seeds
            runs = [("baseline", default_w, cfg)] if at_default else []
            runs += [("finextract", w, cfg) for w in ws
                     if (w == default_w and at_default) or (w != default_w and seed in sweep_seeds)]  # fmt: skip
            for method, w, c in runs:
                c = ExtractConfig(**{**c.__dict__, "w": w}) if method == "finextract" else c
                cands = cluster_generations(generate(pair, c, method), c.resolved(pair.kind)).images
                if e.protected:
                    result[(e.name, method, w)].append(scores(train, cands))
                elif w == default_w:
                    control[(e.name, method)].append(
                        metrics.extraction_success_rate(protected_train, cands)
                    )
        print(f"  done {e.name}", flush=True)

    def mean(name: str, method: str, w: float, i: int) -> float:
        return float(np.mean([r[i] for r in result[(name, method, w)]]))

    dw = {
        e.name: dict((kd, w) for kd, w, _ in defaults)[e.method or "full"] for e in zoo.fine_tunes
    }
    print("\nper protected checkpoint at the default w (mean over seeds)")
    print(
        f"{'checkpoint':<22}{'w':>5}{'FX A-ESR':>10}{'base A-ESR':>12}{'FX AS':>8}{'base AS':>9}{'A-ESR ratio':>13}"
    )
    for e in zoo.select(protected=True):
        fx, bl = mean(e.name, "finextract", dw[e.name], 0), mean(e.name, "baseline", dw[e.name], 0)
        ratio = f"{fx / bl:.2f}x" if bl > 0 else ("inf" if fx > 0 else "-")
        print(f"{e.name:<22}{dw[e.name]:>5}{fx:>10.2f}{bl:>12.2f}{mean(e.name, 'finextract', dw[e.name], 1):>8.3f}"
              f"{mean(e.name, 'baseline', dw[e.name], 1):>9.3f}{ratio:>13}")  # fmt: skip

    print("\nby strength at the default w (mean over checkpoints and seeds)")
    summary = {}
    for strength in ("light", "heavy"):
        names = [e.name for e in zoo.select(protected=True, strength=strength)]
        fx = float(np.mean([mean(nm, "finextract", dw[nm], 0) for nm in names]))
        bl = float(np.mean([mean(nm, "baseline", dw[nm], 0) for nm in names]))
        summary[strength] = (fx, bl)
        ratio = f"{fx / bl:.2f}x" if bl > 0 else ("inf" if fx > 0 else "-")
        print(f"  {strength:<6} A-ESR finextract={fx:.2f} baseline={bl:.2f}  ratio {ratio}")

    print("\nw sweep: FineXtract A-ESR (mean over checkpoints and seeds); baseline in the last row")
    cols = [(s, m) for s in ("light", "heavy") for m in ("full", "lora")]
    print(f"{'w':>6}" + "".join(f"{s + '/' + m:>13}" for s, m in cols))
    for w in grid:
        cells = []
        for s, m in cols:
            names = [e.name for e in zoo.select(protected=True, strength=s, method=m)]
            vals = [mean(nm, "finextract", w, 0) for nm in names if (nm, "finextract", w) in result]
            cells.append(f"{np.mean(vals):>13.2f}" if vals else f"{'-':>13}")
        print(f"{w:>6}" + "".join(cells))
    base_cells = []
    for s, m in cols:
        names = [e.name for e in zoo.select(protected=True, strength=s, method=m)]
        vals = [mean(nm, "baseline", dw[nm], 0) for nm in names]
        base_cells.append(f"{np.mean(vals):>13.2f}" if vals else f"{'-':>13}")
    print(f"{'base':>6}" + "".join(base_cells))

    print("\ncontrol fine-tunes: share of ALL protected training images extracted (should be 0)")
    for (name, method), vals in sorted(control.items()):
        print(f"  {name:<24}{method:<12}{np.mean(vals):.2f}")
    fx, bl = summary["light"]
    print(f"A-ESR finextract={fx:.2f} baseline={bl:.2f}")


if __name__ == "__main__":
    main()
