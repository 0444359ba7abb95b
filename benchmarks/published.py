"""Scanning fine-tunes as hubs publish them: the prompt prompt discovery finds vs our card's vs none.

    python benchmarks/published.py                 # art zoo, reporting split, light and heavy, N=64
    python benchmarks/published.py --quick         # art zoo, the subject set (marine-noto), light, N=32
    python benchmarks/published.py --zoo digits    # the small digit zoo (mechanics: class-conditional)

The zoo's protected fine-tunes of the reporting split are re-published without our card as each
hub would publish them (`dmsec.zoo.publish`): a DreamBooth fine-tune as an HF diffusers folder
with README front matter; a PEFT LoRA as an HF LoRA in diffusers' layout and as a Civitai
download (its version's `trainedWords`: the trigger phrase only); a kohya LoRA as a kohya file
with sd-scripts' `ss_*` metadata (captions: the training prompt). Three arms, one local hub and
one end-to-end scan each (`dmsec.scan.run_scan`, local executor, FineXtract then matching, no
CGI-DM): `card` adds our card with the training prompt, `discovered` is the publication as is
(the scan's prompt discovery finds what it can), `none` strips every prompt a hub would carry
(the scan falls back to ∅, unconditional guidance). Every arm finds its base the same way,
through the base registry (`source.bases`: the README's / kohya's base name and Civitai's
`baseModel` -> the zoo's base folder); the base is not in the hub.

A-ESR per publication: the share of its set's protected training images matched by at least one
generation (distinct artworks of that set's owner / training images); matches to other owners'
artworks are counted and printed as false matches. The copy threshold is the registry
embedder's default (the zoo's `art` embedder for colour images).

Last line: `A-ESR card=<a> discovered=<b> none=<c>` over the light fine-tunes' publications
(every layout: each publication is a checkpoint the scan has to handle on its own).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from dmsec.zoo.publish import ARMS, layouts_of, publish

BASE_NAME = "dmsec/sd-art-base"  # how READMEs and kohya metadata name the base


def open_zoo(name: str, root: Path | None) -> Any:
    """The built zoo (at `root` when given); never builds the art zoo (an hour on 2 cores)."""
    from dmsec.zoo.build import MANIFEST, Zoo, build_zoo

    if root is not None:
        return Zoo(root)
    if name == "digits":
        return build_zoo("small", progress=False)
    from dmsec.zoo.art_build import art_zoo_dir, resolve_art_config

    root = art_zoo_dir(resolve_art_config("art"))
    if not (root / MANIFEST).exists():
        sys.exit(f"the art zoo is not built at {root}; build it first (`dmsec zoo build --preset art`)")  # fmt: skip
    return Zoo(root)


def entries_of(zoo: Any, name: str, quick: bool) -> list[Any]:
    """Protected fine-tunes to publish: the art zoo's reporting split (quick: light, its subject
    set; on the style set fluent-a every arm extracted 0.00 at N=32); the small digit zoo's light
    ones."""
    chosen = []
    for e in zoo.select(protected=True):
        if name == "art" and e.split != "reporting":
            continue
        if (quick or name == "digits") and e.strength != "light":
            continue
        chosen.append(e)
    if quick and name == "art":  # the subject set: light style fine-tunes copy ~nothing at N=32
        first = sorted({e.set for e in chosen if e.set_kind == "subject"})[0]
        chosen = [e for e in chosen if e.set == first]
    return chosen


def build_hub(zoo: Any, entries: list[Any], arm: str, hub: Path, civitai_base: str) -> dict[str, tuple[Any, str]]:  # fmt: skip
    """A local hub of `entries` published for `arm`: {repo id: (zoo entry, layout)}."""
    published = {}
    for e in entries:
        for layout in layouts_of(e):
            repo_id = publish(zoo.root, e, layout, arm, hub, BASE_NAME, civitai_base)
            published[repo_id] = (e, layout)
    return published


def scan_arm(zoo: Any, arm: str, hub: Path, work: Path, registry: Path, args: argparse.Namespace, civitai_base: str) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """Scan one arm's hub end to end; (checkpoint rows, match rows)."""
    from dmsec.extract import guidance_preset
    from dmsec.scan.config import config_from_dict
    from dmsec.scan.resolve import zoo_embedder
    from dmsec.scan.runner import run_scan

    space = zoo_embedder(zoo.root)
    base = str((zoo.root / "base").resolve())
    config = config_from_dict({
        "source": {"uri": str(hub), "bases": [f"{BASE_NAME}={base}", f"{civitai_base}={base}"]},
        "registry": {"location": str(registry), "embedder": space},
        "extract": {"n_samples": args.n, "similarity": space, "seed": args.seed,
                    "defaults": [list(row) for row in guidance_preset(space)]},
        "methods": {"verifier": None},
        "run": {"executor": "local", "cache_dir": str(work / "cache"), "device": args.device},
        "results": {"out": str(work / f"out-{arm}"), "report": False},
    })  # fmt: skip
    run_scan(config, echo=lambda _: None)
    out = work / f"out-{arm}"
    matches = pq.read_table(out / "matches").to_pylist() if (out / "matches").exists() else []
    return pq.read_table(out / "checkpoints").to_pylist(), matches


def aesr(entry: Any, repo_id: str, matches: list[dict]) -> tuple[float, int]:
    """(share of the set's training images matched, matches to other owners' artworks)."""
    mine = [m for m in matches if m["repo_id"] == repo_id]
    owner = f"owner of {entry.set}"
    found = {m["artwork_id"] for m in mine if m["artwork_owner"] == owner}
    false = len({m["artwork_id"] for m in mine if m["artwork_owner"] != owner})
    return len(found) / len(entry.train_images), false


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--zoo", choices=("art", "digits"), default="art")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=Path, default=None, help="keep the hubs and results here")
    parser.add_argument("--zoo-root", type=Path, default=None, help="a built zoo folder (default: the cache's)")  # fmt: skip
    args = parser.parse_args()
    args.n = args.n_samples or (32 if args.quick else 64)
    started = time.perf_counter()
    from dmsec.scan.resolve import build_zoo_registry

    zoo = open_zoo(args.zoo, args.zoo_root)
    civitai_base = "SD 1.5" if args.zoo == "art" else "Other"  # digits: no SD family to claim
    entries = entries_of(zoo, args.zoo, args.quick)
    work = args.keep or Path(tempfile.mkdtemp(prefix="dmsec-published-"))
    registry = work / "registry"
    build_zoo_registry(zoo.root, registry)
    print(f"zoo {zoo.root.name}; {len(entries)} protected fine-tunes; N={args.n}; seed {args.seed}; "
          f"arms {', '.join(ARMS)}; work {work}", flush=True)  # fmt: skip
    split = ("reporting split (the art preset's w, k were chosen on the tuning split)" if args.zoo == "art"
             else "small digit zoo, no split (nothing is chosen here: mechanics only)")  # fmt: skip
    print(f"split: {split}", flush=True)
    results: dict[
        str, dict[str, tuple[Any, str, float, int, dict]]
    ] = {}  # arm -> publication -> ...
    for arm in ARMS:
        hub = work / f"hub-{arm}"
        published = build_hub(zoo, entries, arm, hub, civitai_base)
        arm_started = time.perf_counter()
        rows, matches = scan_arm(zoo, arm, hub, work, registry, args, civitai_base)
        by_id = {r["repo_id"]: r for r in rows}
        results[arm] = {}
        for repo_id, (entry, layout) in published.items():
            row = by_id.get(repo_id, {"status": "missing", "error": "not listed"})
            score, false = aesr(entry, repo_id, matches) if row["status"] == "ok" else (0.0, 0)
            results[arm][f"{entry.name}-{layout}"] = (entry, layout, score, false, row)
        errors = [f"{k}: {r['error']}" for k, (_, _, _, _, r) in results[arm].items() if r["status"] != "ok"]  # fmt: skip
        print(f"[{arm}] {len(published)} publications scanned in {time.perf_counter() - arm_started:.0f} s; "
              f"{len(errors)} not ok" + "".join(f"\n  {e}" for e in errors), flush=True)  # fmt: skip
    print(
        f"\n{'publication':<44}{'str.':<6}{'card':>6}{'disc.':>7}{'none':>6}  discovered prompt (source)"
    )
    means: dict[tuple[str, str], list[float]] = defaultdict(list)
    for label, (entry, layout, _, _, _) in results["discovered"].items():
        cells = []
        for arm in ARMS:
            _, _, score, false, row = results[arm][label]
            means[(arm, entry.strength)].append(score)
            means[(arm, f"{entry.strength}/{layout}")].append(score)
            cells.append(f"{score:.2f}" + ("*" if false else ""))
        row = results["discovered"][label][4]
        found = f"{row.get('prompt')!r} ({row.get('prompt_source')})"
        print(f"{label:<44}{entry.strength:<6}{cells[0]:>6}{cells[1]:>7}{cells[2]:>6}  {found}")  # fmt: skip
    false_total = sum(f for arm in ARMS for (_, _, _, f, _) in results[arm].values())
    print(f"(* = matched another set's artwork; {false_total} such artworks in all)")
    print("\nmeans by strength and layout (A-ESR card / discovered / none)")
    for key in sorted({k for _, k in means}):
        vals = [sum(means[(a, key)]) / len(means[(a, key)]) for a in ARMS]
        print(f"  {key:<24}" + " / ".join(f"{v:.2f}" for v in vals) + f"  (n={len(means[('card', key)])})")  # fmt: skip
    print(f"{time.perf_counter() - started:.0f} s in all")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    light = [sum(means[(a, "light")]) / max(len(means[(a, "light")]), 1) for a in ARMS]
    print(f"A-ESR card={light[0]:.2f} discovered={light[1]:.2f} none={light[2]:.2f}")


if __name__ == "__main__":
    main()
