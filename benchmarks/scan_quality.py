"""Findings a team can act on: precision per confidence band and recall of a scan, against a
registry that holds every work of the artists involved.

    python benchmarks/scan_quality.py                  # reporting split, scan defaults (<= 30 min)
    python benchmarks/scan_quality.py --split tuning   # tuning split: chooses the confidence rule
    python benchmarks/scan_quality.py --quick          # reporting split, fewer checkpoints (<= 5 min)
    python benchmarks/scan_quality.py --zoo digits     # the small digit zoo (split by noise)

Checkpoints (art): the art zoo's fine-tunes (subject and style sets of 5-10 works, DreamBooth with
and without prior preservation and LoRA, light and heavy, controls) and the `art-partial` zoo's
(style sets of 48 works at the steps per image users choose: partial memorisation, where a few
works come back and most do not). Kohya files are skipped (their PEFT twins' weights). Both are
built on first use (`art-partial` in minutes once the art zoo exists).

Registry: `dmsec.zoo.registry.build_catalogue_registry`, every work of each artist a fine-tuning
set of either zoo draws from (4 artists x 1,594 drawings; the digit zoo: every image of each digit
class), all protected except the control sets' images, which nobody registered. Each checkpoint is
scanned with `dmsec scan`'s defaults (each model picks its space and guidance preset, the registry
its embedder). Ground truth: a finding is true iff its artwork is one of its checkpoint's training
images (by artwork id: a registered duplicate of a training image counts as it).

Choice (`--split tuning`, the tuning split only): the confidence rule
(`dmsec.results.confidence.rule_grid`: support, membership signs, margin) by
`dmsec.evaluation.choose_setting`, each checkpoint a unit scored by TP_high - 19 x FP_high: a true
high finding is worth one analyst's win and a false one costs 19, so a rule gains only while its
high band is >= 95% precise (the target); ties go to the fewer false highs, then the earlier
(stricter) rule of the grid. A tuning split without a single false finding cannot judge precision
(the loosest rule would win), so then `DEFAULT_RULE` is kept. The run says whether its choice is
`DEFAULT_RULE` (the rule the scan applies); a different choice is a change to make there. The
registry's match threshold stays the embedder's calibrated default and CGI-DM's steps the scan's
(neither is swept here).

Report (`--split reporting`, the default; the rule is `DEFAULT_RULE`, chosen on the tuning
split): per band findings, true, precision; recall over (checkpoint, training work) pairs per zoo,
recipe and strength (found in any band, and in high); false findings on controls, on same-set
hold-outs and on the rest of the artists' catalogues; per evidence sign its rate on true and on
false findings. `--split both` runs the two in one go (about twice as long).

Splits. Art: the zoos' own (tuning: fruit-twemoji, openmoji-a, openmoji-b, control-vegetable-noto;
reporting: marine-noto, fluent-a, fluent-b, control-bird-twemoji). The small digit zoo has one
fine-tune per kind, so it splits by noise only: tuning scans at extract seed 1000, reporting at
seed 0, the same checkpoints (weaker; printed as such). `--quick`: the heavy LoRA of each art
zoo set and the partial-memorisation LoRA, with 64 samples and 50 CGI-DM steps (said so).

Last line: `findings precision high=<a> medium=<b> low=<c> recall=<r>` (the split it ran, the
reporting split by default; r over every protected fine-tune's training works, found in any band;
n/a where a band is empty).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmsec.evaluation import REPORTING, TUNING, Trial, choose_setting
from dmsec.results.confidence import (
    CONFIDENCE,
    DEFAULT_RULE,
    SIGNS,
    ConfidenceRule,
    FindingEvidence,
    rule_grid,
)
from dmsec.results.findings import derive_findings
from dmsec.zoo.build import Zoo, ZooEntry
from dmsec.zoo.registry import build_catalogue_registry

FALSE_COST = 19  # one false high finding outweighs 19 true ones: break-even at precision 0.95
DIGIT_SEEDS = {TUNING: 1000, REPORTING: 0}  # the small digit zoo's noise split
QUICK_SAMPLES, QUICK_CGIDM_STEPS = 64, 50


@dataclass
class Scored:
    """One finding of a split's scan with its ground truth."""

    entry: ZooEntry
    row: dict[str, Any]
    true: bool
    role: str  # of the artwork: train (of this checkpoint's set), holdout (of it), other

    def evidence(self) -> FindingEvidence:
        r = self.row
        return FindingEvidence(r["support"], r["margin"], r["cgidm_status"], r["cgidm_score"],
                               r["cgidm_masked_score"], r["cgidm_baseline_gap"])  # fmt: skip


def open_zoos(name: str) -> list[Zoo]:
    """The zoos a run scans: the art zoo and `art-partial` (on its base), or the small digit zoo."""
    if name == "art":
        from dmsec.zoo.art_build import build_art_zoo

        return [build_art_zoo("art", progress=False), build_art_zoo("art-partial", progress=False)]
    from dmsec.zoo.build import build_zoo

    return [build_zoo("small", progress=False)]


def zoo_name(zoo: Zoo) -> str:
    return str(zoo.manifest["config"]["name"])


def split_entries(zoos: list[Zoo], split: str, quick: bool) -> list[tuple[Zoo, ZooEntry]]:
    """The checkpoints one split scans, with their zoo: kohya twins left out; `quick`: each set's
    heavy LoRA and the partial-memorisation zoo's LoRA."""
    chosen = [(z, e) for z in zoos for e in z.fine_tunes
              if e.layout != "kohya" and (e.split is None or e.split == split)]  # fmt: skip
    if not quick:
        return chosen
    partial = [z for z in zoos if zoo_name(z) == "art-partial"]
    return [(z, e) for z, e in chosen if e.method == "lora" and (e.strength == "heavy" or z in partial)]  # fmt: skip


def scan_split(checkpoints: list[tuple[Zoo, ZooEntry]], registry: Path, work: Path, seed: int | None,
               quick: bool) -> Path:  # fmt: skip
    """Scan `checkpoints` (a local hub of copies, the first zoo's base: every zoo here is built on
    it) against `registry`; returns the results folder."""
    from dmsec.scan import run_scan
    from dmsec.scan.config import config_from_dict

    hub = work / "hub"
    first = checkpoints[0][0]
    shutil.copytree(first.root / first.entry("base").path, hub / "base")
    for zoo, e in checkpoints:
        shutil.copytree(zoo.root / e.path, hub / e.path)
    data: dict[str, Any] = {
        "source": {"uri": str(hub)}, "registry": {"location": str(registry)},
        "results": {"out": str(work / "results"), "report": False},
        "run": {"executor": "local", "cache_dir": str(work / "cache")},
    }  # fmt: skip
    extract: dict[str, Any] = {} if seed is None else {"seed": seed}
    if quick:
        extract["n_samples"] = QUICK_SAMPLES
        data["authenticate"] = {"steps": QUICK_CGIDM_STEPS}
    if extract:
        data["extract"] = extract
    run_scan(config_from_dict(data), echo=lambda line: print(f"    {line}", flush=True))
    return work / "results"


def score(results: Path, entries: list[ZooEntry], works: list[dict[str, Any]]) -> list[Scored]:  # fmt: skip
    """Every finding of a split's scan, with its truth."""
    by_name = {e.path: e for e in entries} | {e.name: e for e in entries}
    out = []
    for row in derive_findings(results).to_pylist():
        entry = by_name[row["repo_id"]]
        roles = {(w["role"], w["set"]) for w in works if w["artwork_id"] == row["artwork_id"]}
        true = ("train", entry.set) in roles
        role = "train" if true else "holdout" if ("holdout", entry.set) in roles else "other"
        out.append(Scored(entry, row, true, role))
    return out


def training_pairs(entries: list[ZooEntry], works: list[dict[str, Any]]) -> dict[str, set[int]]:
    """checkpoint name -> artwork ids of its training works (protected fine-tunes only)."""
    return {e.name: {w["artwork_id"] for w in works if w["role"] == "train" and w["set"] == e.set}
            for e in entries if e.protected}  # fmt: skip


def rule_trials(scored: list[Scored], entries: list[ZooEntry], grid: list[ConfidenceRule]) -> list[Trial]:  # fmt: skip
    """One trial per (rule, tuning checkpoint): primary TP_high - 19 FP_high, secondary -FP_high."""
    trials = []
    for i, rule in enumerate(grid):
        for e in entries:
            highs = [s.true for s in scored if s.entry.name == e.name and rule.assess(s.evidence()).confidence == "high"]  # fmt: skip
            tp, fp = sum(highs), len(highs) - sum(highs)
            trials.append(Trial(TUNING, "confidence-rule", "all", float(i), e.name, tp - FALSE_COST * fp, -fp))  # fmt: skip
    return trials


def choose_rule(scored: list[Scored], entries: list[ZooEntry]) -> ConfidenceRule:
    """The tuning split's choice of confidence rule (see the module docstring), printed."""
    grid = rule_grid()
    if not any(not s.true for s in scored):
        print("[tuning split] no false finding on the tuning split: every rule is 1.00 precise there, "
              "so none can be chosen on precision; DEFAULT_RULE is kept")  # fmt: skip
        return DEFAULT_RULE
    choice = choose_setting(rule_trials(scored, entries, grid), "confidence-rule", "all")
    rule = grid[int(choice.setting)]
    print(f"[tuning split] rule chosen (mean TP_high - {FALSE_COST} FP_high per checkpoint "
          f"{choice.primary:.2f} over {choice.n_units} checkpoints, {len(grid)} rules): {rule}")  # fmt: skip
    same = "the same as" if rule == DEFAULT_RULE else "NOT the same as (a change to make in dmsec/results/confidence.py)"  # fmt: skip
    print(f"[tuning split] this is {same} DEFAULT_RULE ({DEFAULT_RULE})")
    print(f"[tuning split] {rule.describe()}")
    return rule


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def bands(scored: list[Scored], rule: ConfidenceRule) -> dict[str, tuple[int, int]]:
    """band -> (findings, true)."""
    got: dict[str, list[bool]] = {b: [] for b in CONFIDENCE}
    for s in scored:
        got[rule.assess(s.evidence()).confidence].append(s.true)
    return {b: (len(v), sum(v)) for b, v in got.items()}


def report(label: str, scored: list[Scored], checkpoints: list[tuple[Zoo, ZooEntry]],
           works: list[dict[str, Any]], rule: ConfidenceRule) -> tuple[dict[str, tuple[int, int]], int, int]:  # fmt: skip
    """Print the split's tables; returns (bands, training pairs found, training pairs)."""
    entries = [e for _, e in checkpoints]
    zoo_of = {e.name: zoo_name(z) for z, e in checkpoints}
    table = bands(scored, rule)
    print(f"[{label}] {'band':<8}{'findings':>9}{'true':>6}{'precision':>10}")
    for b, (n, t) in table.items():
        print(f"[{label}] {b:<8}{n:>9}{t:>6}{_ratio(t, n):>10}")
    pairs = training_pairs(entries, works)
    band_of = {(s.entry.name, s.row["artwork_id"]): rule.assess(s.evidence()).confidence for s in scored if s.true}  # fmt: skip
    cells: dict[tuple[str, str, str], list[str | None]] = defaultdict(list)
    for e in entries:
        for a in pairs.get(e.name, ()):
            cells[(zoo_of[e.name], e.method or e.kind, e.strength or "")].append(band_of.get((e.name, a)))  # fmt: skip
    print(f"[{label}] recall over (checkpoint, training work) pairs: found in any band / in high")
    print(
        f"[{label}] {'zoo':<13}{'recipe':<8}{'strength':<10}{'pairs':>6}{'any band':>10}{'high':>7}"
    )
    for (zoo, recipe, strength), got in sorted(cells.items()):
        print(f"[{label}] {zoo:<13}{recipe:<8}{strength:<10}{len(got):>6}{_ratio(sum(f is not None for f in got), len(got)):>10}"
              f"{_ratio(sum(f == 'high' for f in got), len(got)):>7}")  # fmt: skip
    heavy = [f for (_, _, st), fs in cells.items() if st == "heavy" for f in fs]
    print(f"[{label}] heavy fine-tunes: recall any band {_ratio(sum(f is not None for f in heavy), len(heavy))}, "
          f"high {_ratio(sum(f == 'high' for f in heavy), len(heavy))} over {len(heavy)} pairs")  # fmt: skip
    false = [s for s in scored if not s.true]
    kinds = Counter(("control" if not s.entry.protected else s.role, rule.assess(s.evidence()).confidence) for s in false)  # fmt: skip
    print(f"[{label}] false findings by where the artwork sits (high/medium/low):")
    for where in ("control", "holdout", "other"):
        counts = "/".join(str(kinds[(where, b)]) for b in CONFIDENCE)
        what = {"control": "on controls", "holdout": "same-set hold-outs (same artist, unseen)",
                "other": "rest of the catalogues (same artist, unseen)"}[where]  # fmt: skip
        print(f"[{label}]   {what:<46}{counts:>12}")
    print(f"[{label}] evidence signs: share of true / of false findings showing each")
    trues = [set(rule.signs(s.evidence())) for s in scored if s.true]
    falses = [set(rule.signs(s.evidence())) for s in false]
    for sign in SIGNS:
        on_true = _ratio(sum(sign in x for x in trues), len(trues))
        on_false = _ratio(sum(sign in x for x in falses), len(falses))
        print(f"[{label}]   {sign:<10} true {on_true:>5} ({len(trues)})   false {on_false:>5} ({len(falses)})")  # fmt: skip
    high_p = table["high"][1] / table["high"][0] if table["high"][0] else float("nan")
    heavy_r = sum(f is not None for f in heavy) / len(heavy) if heavy else float("nan")
    met = high_p >= 0.95 and heavy_r >= 0.8
    print(f"[{label}] targets (high precision >= 0.95, heavy recall >= 0.8): {'met' if met else 'NOT met'} "
          f"(high {_ratio(table['high'][1], table['high'][0])}, heavy recall {_ratio(sum(f is not None for f in heavy), len(heavy))})")  # fmt: skip
    found = sum(f is not None for fs in cells.values() for f in fs)
    return table, found, sum(len(fs) for fs in cells.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--zoo", choices=["art", "digits"], default="art")
    parser.add_argument("--split", choices=[REPORTING, TUNING, "both"], default=REPORTING,
                        help="reporting: report DEFAULT_RULE; tuning: choose the rule; both: one run")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=f"each set's heavy LoRA and the partial-memorisation LoRA, {QUICK_SAMPLES} samples, {QUICK_CGIDM_STEPS} CGI-DM steps")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None, help="keep the hubs, registry and results here")  # fmt: skip
    parser.add_argument("--reuse", action="store_true", help="with --work: score the scans already there instead of scanning again")  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="scan-quality-"))
    zoos = open_zoos(args.zoo)
    if args.reuse and (work / "registry").exists():
        from dmsec.match import ProtectedArtworkIndex
        from dmsec.zoo.registry import read_works

        registry, works_table = ProtectedArtworkIndex.open(work / "registry"), read_works(work / "registry")  # fmt: skip
    else:
        registry, works_table = build_catalogue_registry([z.root for z in zoos], work / "registry")
    works = works_table.to_pylist()
    print(f"zoos {', '.join(z.root.name for z in zoos)}; registry: {len(registry)} registered works of "
          f"{len({w['artist'] for w in works})} artists ({sum(not w['protected'] for w in works)} "
          f"control images unregistered); torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {platform.machine()}; {f'--quick: {QUICK_SAMPLES} samples, {QUICK_CGIDM_STEPS} CGI-DM steps' if args.quick else 'scan defaults'}", flush=True)  # fmt: skip
    if args.zoo == "digits":
        print("split: the small digit zoo has one fine-tune per kind, so tuning scans at extract "
              "seed 1000 and reporting at seed 0, the same checkpoints (a noise split: weaker)")  # fmt: skip
    splits = [TUNING, REPORTING] if args.split == "both" else [args.split]
    scored: dict[str, list[Scored]] = {}
    checkpoints: dict[str, list[tuple[Zoo, ZooEntry]]] = {}
    for split in splits:
        checkpoints[split] = split_entries(zoos, split, args.quick)
        t0 = time.perf_counter()
        print(f"[{split} split] scanning {len(checkpoints[split])} checkpoints: {', '.join(e.name for _, e in checkpoints[split])}", flush=True)  # fmt: skip
        seed = DIGIT_SEEDS[split] if args.zoo == "digits" else None
        if args.reuse and (work / split / "results").exists():
            results = work / split / "results"
            print(f"[{split} split] --reuse: scoring the scan in {results}", flush=True)
        else:
            results = scan_split(checkpoints[split], work / "registry", work / split, seed, args.quick)  # fmt: skip
        scored[split] = score(results, [e for _, e in checkpoints[split]], works)
        print(f"[{split} split] {len(scored[split])} findings, {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    rule, last = DEFAULT_RULE, None
    if TUNING in scored:
        rule = choose_rule(scored[TUNING], [e for _, e in checkpoints[TUNING]])
        last = report("tuning split", scored[TUNING], checkpoints[TUNING], works, rule)
    if REPORTING in scored:
        origin = "the tuning split's choice above" if TUNING in scored else "DEFAULT_RULE, chosen on the tuning split"  # fmt: skip
        print(f"[reporting split] rule ({origin}): {rule.describe()}")
        last = report("reporting split", scored[REPORTING], checkpoints[REPORTING], works, rule)
        if rule != DEFAULT_RULE:
            ref = bands(scored[REPORTING], DEFAULT_RULE)
            print("[reporting split] for reference, DEFAULT_RULE's precision: " + ", ".join(f"{b} {_ratio(t, n)} ({n})" for b, (n, t) in ref.items()))  # fmt: skip
    assert last is not None
    table, found, pairs = last
    print(f"{time.perf_counter() - started:.0f} s in all; work folder {work}")
    where = (
        "" if REPORTING in scored else "  (tuning split: where the rule was chosen, not a result)"
    )
    p = {b: _ratio(t, n) for b, (n, t) in table.items()}
    print(f"findings precision high={p['high']} medium={p['medium']} low={p['low']} recall={_ratio(found, pairs)}{where}")  # fmt: skip


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
