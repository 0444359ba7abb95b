"""FineXtract vs the direct-sampling baseline, each at its own setting chosen on a tuning split
with the same grid and the same rule, reported on a disjoint reporting split.

    python benchmarks/extraction.py                    # digit zoo (full), N=128
    python benchmarks/extraction.py --quick            # small digit zoo, N=64, short grid
    python benchmarks/extraction.py --zoo art          # art zoo, N=64
    python benchmarks/extraction.py --zoo art --quick  # art zoo, N=32, short grid, light only

Protocol, the same for both methods:
1. Tuning split, light protected fine-tunes: FineXtract over a grid of w (k fixed per kind: the
   paper's for the art zoo, 0 for the digits) and the baseline (CFG sampling of the fine-tune
   alone) over the *same* grid of CFG scales. Per fine-tune kind (full, lora) and method, the
   setting with the best mean A-ESR is kept (ties: the best mean AS, then the smaller setting;
   `dmsec.evaluation.choose_setting`, which reads tuning-split runs only).
2. Reporting split: both methods at their chosen settings, per checkpoint, light and heavy.
Both methods get the same N generations from the same initial noise (`generate`), the same
clustering (N0 = the number of training images) and the same A-ESR / AS.

Splits. Art zoo: its own (tuning: fruit-twemoji, openmoji-a; reporting: marine-noto, fluent-a,
other concepts and an artist no setting saw); the copy threshold is recalibrated on the tuning
split's artists only (A-ESR at it is the headline; at the all-artist threshold and at 0.985
beside). Each kohya LoRA is the same adapter as its PEFT twin: it is printed as its own row and
never enters a mean. Digit zoo (full): tuning = full-8a and lora-7b, reporting = full-7a and
lora-9a (other training images, other digits for the LoRA). The small zoo (`--quick`) has one
fine-tune per kind, so its split is by noise only: tuning at generation seeds 1000+ (disjoint
noise), reporting at seed 0 on the same checkpoints -- weaker, and printed as such.

Last line: `A-ESR finextract=<x> baseline=<y> baseline_scale=<s>` on the reporting split's light
fine-tunes (PEFT layout only); <s> is one scale, or `full:<a>,lora:<b>` when the kinds differ.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dmsec import metrics
from dmsec.evaluation import REPORTING, TUNING, Choice, Trial, choose_setting, sweep_table
from dmsec.extract import PAPER_DEFAULTS, ExtractConfig, extract

METHODS = ("finextract", "baseline")
KINDS = ("full", "lora")
GRIDS = {  # one grid per zoo, used for FineXtract's w and the baseline's CFG scale alike
    ("digits", False): (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0),
    ("digits", True): (1.0, 1.5, 2.0, 3.0, 5.0),
    ("art", False): (1.0, 1.5, 2.0, 3.0, 5.0),
    ("art", True): (1.0, 2.0, 3.0),
}
SMALL_TUNING_SEED = 1000  # the small digit zoo's tuning noise: seeds 1000.. never used to report
DIGIT_SPLITS = {"full-8a": TUNING, "lora-7b": TUNING, "full-7a": REPORTING, "lora-9a": REPORTING}


@dataclass(frozen=True)
class Run:
    """One checkpoint on one split: generation `seed`, its role and whether it enters means."""

    name: str
    kind: str  # full | lora
    split: str
    seed: int
    strength: str
    label: str  # a short description for the tables (set kind, layout)
    twin: bool = False  # a format twin (kohya copy of a PEFT adapter): own row, never in a mean


class Bench:
    """One zoo as the protocol sees it: runs per split, pairs, configs and copy thresholds."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.quick, self.device = args, args.quick, args.device
        self.pairs: dict[str, Any] = {}
        if args.zoo == "art":
            from dmsec.zoo.art_build import build_art_zoo

            self.zoo = build_art_zoo("art", device=self.device)
            self.space = metrics.ART
            tuning_artists = tuple(sorted({e.artist for e in self.zoo.select(protected=True, split=TUNING) if e.artist}))  # fmt: skip
            self.thresholds = {
                f"tau tuning artists {'+'.join(tuning_artists)}": metrics.art_copy_threshold(
                    artists=tuning_artists
                ),  # fmt: skip
                "tau all artists": metrics.art_copy_threshold(),
                "tau 0.985": 0.985,
            }
        else:
            from dmsec.zoo.build import build_zoo

            self.zoo = build_zoo("small" if self.quick else "full", device=self.device)
            self.space = metrics.DIGITS
            self.thresholds = {"tau digits": metrics.copy_threshold()}
            self.base = self.zoo.load("base", device=self.device)
        self.headline_tau = next(iter(self.thresholds))

    def kind(self, entry: Any) -> str:
        return "lora" if entry.method == "lora" else "full"

    def runs(self, split: str) -> list[Run]:
        """Tuning: light protected fine-tunes, no format twins; reporting: light and heavy (light
        only in --quick), format twins as their own rows (not in --quick)."""
        zoo, out = self.zoo, []
        for e in zoo.select(protected=True):
            if split == TUNING and e.strength != "light":
                continue
            if split == REPORTING and self.quick and e.strength != "light":
                continue
            if self.args.zoo == "art":
                twin = e.layout == "kohya"  # the same adapter as its PEFT twin
                if e.split != split or (twin and (self.quick or split == TUNING)):
                    continue
                label = f"{e.set_kind}/{e.layout}"
                out.append(Run(e.name, self.kind(e), split, self.args.seed, e.strength, label, twin))  # fmt: skip
            elif zoo.root.name.startswith("small"):
                seed = SMALL_TUNING_SEED if split == TUNING else self.args.seed
                out.append(Run(e.name, self.kind(e), split, seed, e.strength, "seed split"))
            elif DIGIT_SPLITS.get(e.set) == split:
                out.append(Run(e.name, self.kind(e), split, self.args.seed, e.strength, "digit split"))  # fmt: skip
        return out

    def pair(self, name: str) -> Any:
        if name not in self.pairs:
            if self.args.zoo == "art":
                from dmsec.models.loading import load_pair

                self.pairs = {name: load_pair(self.zoo.path(name), device=self.device)}
            else:
                from dmsec.models.pair import make_pair

                self.pairs = {name: make_pair(self.base, self.zoo.load(name, device=self.device))}
        return self.pairs[name]

    def candidates(self, run: Run, method: str, setting: float, train: torch.Tensor) -> torch.Tensor:  # fmt: skip
        k = PAPER_DEFAULTS[run.kind][1] if self.args.zoo == "art" else 0.0
        similarity = "art" if self.args.zoo == "art" else "zoo"
        config = ExtractConfig(n_samples=self.args.n, seed=run.seed, n_groups=len(train), similarity=similarity,
                               w=setting, k=k, guidance_scale=setting)  # fmt: skip
        with torch.inference_mode():
            return extract(self.pair(run.name), config, method).images

    def score(self, run: Run, method: str, setting: float, train: torch.Tensor) -> dict[str, float]:  # fmt: skip
        """A-ESR at every threshold of the zoo and AS of one run."""
        cands = self.candidates(run, method, setting, train)
        out = {tau: metrics.extraction_success_rate(train, cands, t, self.space) for tau, t in self.thresholds.items()}  # fmt: skip
        out["AS"] = metrics.average_similarity(train, cands, self.space)
        return out


def tune(bench: Bench, grid: tuple[float, ...]) -> tuple[dict[tuple[str, str], Choice], list[Trial]]:  # fmt: skip
    """Both methods over the same grid on the tuning split; the rule's choice per method and kind."""
    trials: list[Trial] = []
    runs = bench.runs(TUNING)
    print(f"\n[tuning split] {len(runs)} light fine-tunes x {len(METHODS)} methods x grid {grid}", flush=True)  # fmt: skip
    for run in runs:
        train = bench.zoo.train_images(run.name)
        for method in METHODS:
            cells = []
            for s in grid:
                r = bench.score(run, method, s, train)
                trials.append(Trial(TUNING, method, run.kind, s, f"{run.name}@{run.seed}", r[bench.headline_tau], r["AS"]))  # fmt: skip
                cells.append(f"{s:g}:{r[bench.headline_tau]:.2f}")
            print(f"  {run.name:<30} seed {run.seed:<5} {method:<11} " + " ".join(cells), flush=True)  # fmt: skip
    print("\n[tuning split] mean A-ESR / AS per setting (w for FineXtract, CFG scale for the baseline)")  # fmt: skip
    print(f"{'setting':>8}" + "".join(f"{m[:10] + '/' + kd:>18}" for m in METHODS for kd in KINDS))
    tables = {(m, kd): sweep_table(trials, m, kd) for m in METHODS for kd in KINDS}
    for s in grid:
        cells = [tables[key].get(s) for key in tables]
        print(f"{s:>8g}" + "".join(f"{c[0]:>11.2f} /{c[1]:.3f}" if c else f"{'-':>18}" for c in cells))  # fmt: skip
    chosen = {(m, kd): choose_setting(trials, m, kd) for m in METHODS for kd in KINDS if tables[(m, kd)]}  # fmt: skip
    for c in chosen.values():
        print(f"  chosen: {c.describe()}")
    return chosen, trials


def report(bench: Bench, chosen: dict[tuple[str, str], Choice]) -> dict[str, list[dict[str, float]]]:  # fmt: skip
    """Both methods at their chosen settings on every reporting run; rows by method."""
    taus = list(bench.thresholds)
    print(f"\n[reporting split] A-ESR at {taus[0]} = {bench.thresholds[taus[0]]:.4f}"
          + "".join(f"; {t} = {bench.thresholds[t]:.4f}" for t in taus[1:]))  # fmt: skip
    print(f"{'checkpoint':<32}{'split/label':<16}{'str.':<6}{'w':>5}{'s':>5}{'FX A-ESR':>9}{'base':>6}"
          f"{'FX AS':>7}{'base AS':>8}" + "".join(f"{'FX/base @' + t.split()[-1][:8]:>18}" for t in taus[1:]))  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in bench.runs(REPORTING):
        if (("finextract", run.kind) not in chosen) or (("baseline", run.kind) not in chosen):
            continue
        train = bench.zoo.train_images(run.name)
        w, s = chosen[("finextract", run.kind)].setting, chosen[("baseline", run.kind)].setting
        try:
            fx, bl = (
                bench.score(run, "finextract", w, train),
                bench.score(run, "baseline", s, train),
            )
        except Exception as exc:  # a layout the loader refuses is reported, not hidden
            print(f"{run.name:<32}{run.label:<16}error: {exc}")
            continue
        twin = " (twin: not in means)" if run.twin else ""
        print(f"{run.name:<32}{run.label:<16}{run.strength:<6}{w:>5g}{s:>5g}{fx[taus[0]]:>9.2f}{bl[taus[0]]:>6.2f}"
              f"{fx['AS']:>7.3f}{bl['AS']:>8.3f}" + "".join(f"{fx[t]:>12.2f} /{bl[t]:.2f}" for t in taus[1:]) + twin, flush=True)  # fmt: skip
        if not run.twin:
            for method, r in (("finextract", fx), ("baseline", bl)):
                rows[method].append({**r, "strength": run.strength, "kind": run.kind})
    return rows


def controls(bench: Bench, chosen: dict[tuple[str, str], Choice]) -> None:
    """Digit zoo: control fine-tunes must extract none of the protected images at the settings."""
    zoo = bench.zoo
    protected = torch.cat([zoo.train_images(e.name) for e in zoo.select(protected=True)])
    print("\ncontrol fine-tunes: share of ALL protected training images extracted (should be 0)")
    for e in zoo.select(protected=False):
        kind = bench.kind(e)
        run = Run(e.name, kind, REPORTING, bench.args.seed, e.strength or "", "control")
        for method in METHODS:
            if (method, kind) in chosen:
                c = bench.candidates(run, method, chosen[(method, kind)].setting, zoo.train_images(e.name))  # fmt: skip
                print(f"  {e.name:<26}{method:<12}{metrics.extraction_success_rate(protected, c, None, bench.space):.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--zoo", choices=("digits", "art"), default="digits")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="the reporting split's generation seed")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    quick_n, full_n = (32, 64) if args.zoo == "art" else (64, 128)
    args.n = args.n_samples or (quick_n if args.quick else full_n)
    grid = GRIDS[(args.zoo, args.quick)]
    started = time.perf_counter()
    bench = Bench(args)
    split = {"art": "the art zoo's own splits", "digits": "by digit sets"}[args.zoo]
    if args.zoo == "digits" and bench.zoo.root.name.startswith("small"):
        split = f"by noise only (tuning seeds {SMALL_TUNING_SEED}+, reporting seed {args.seed}; same checkpoints)"  # fmt: skip
    print(f"zoo {bench.zoo.root.name}; N={args.n} generations per run; split {split}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    chosen, _ = tune(bench, grid)
    rows = report(bench, chosen)
    if args.zoo == "digits":
        controls(bench, chosen)
    print("\n[reporting split] means by strength (PEFT layout only; twins excluded)")
    means = {}
    for strength in ("light", "heavy"):
        vals = [float(np.mean([r[bench.headline_tau] for r in rows[m] if r["strength"] == strength] or [np.nan])) for m in METHODS]  # fmt: skip
        means[strength] = vals
        if not np.isnan(vals[0]):
            ratio = f"{vals[0] / vals[1]:.2f}x" if vals[1] > 0 else "inf"
            print(f"  {strength:<6} A-ESR finextract={vals[0]:.2f} baseline={vals[1]:.2f}  ratio {ratio}")  # fmt: skip
    settings = {kd: chosen[("baseline", kd)].setting for kd in KINDS if ("baseline", kd) in chosen}
    scale = f"{next(iter(settings.values())):g}" if len(set(settings.values())) == 1 else ",".join(f"{kd}:{s:g}" for kd, s in settings.items())  # fmt: skip
    fx_w = ",".join(f"{kd}:{chosen[('finextract', kd)].setting:g}" for kd in KINDS if ("finextract", kd) in chosen)  # fmt: skip
    print(f"chosen on the tuning split: finextract w {fx_w}; baseline CFG scale {scale}")
    print(f"{time.perf_counter() - started:.0f} s in all")
    fx, bl = means["light"]
    print(f"A-ESR finextract={fx:.2f} baseline={bl:.2f} baseline_scale={scale}")


if __name__ == "__main__":
    main()
