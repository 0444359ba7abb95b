"""How much does each zoo checkpoint memorise? Build time, and per checkpoint the share of its
training images (and hold-outs) that direct sampling with the instance class copies.

    python benchmarks/zoo.py            # the full zoo (~15 min to build on 2 cores, then ~1 min)
    python benchmarks/zoo.py --quick    # the small zoo
    python benchmarks/zoo.py --zoo art  # the art zoo (--quick: art-small)

Last line: `copied share: heavy=<x> light=<y> base=<z>` — mean share of protected training images
copied by direct sampling of the heavy fine-tunes, of the light ones, and of the base model.

Art zoo (`--zoo art`), per fine-tune: the share of its training images (and hold-outs) that direct sampling copies —
128 samples (`--n-samples`), DDIM 50 steps, classifier-free guidance 3 with the instance prompt
(the FineXtract baseline's sampler), copy = art similarity (`dmsec.metrics.ART`, Pearson of RGB
pixels at 16x16) at or above the threshold calibrated on the data set. Also: the VAE's
reconstruction PSNR per artist and its *ceiling* (the share of images whose own reconstruction
passes the copy threshold: no latent model can copy more), the base's copied share, build
times, and two pictures in docs/figures/ (base samples per style, fine-tunes beside their
training images).

Last line: `copied share: heavy=<x> light=<y> base=<z>` (protected db + lora fine-tunes of the
reporting split — the recipes' step counts were chosen on the tuning split, whose means are
printed above it for reference; the prior-preservation DreamBooth and the kohya copies are
reported in the table, not in the means).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dmsec import metrics
from dmsec.extract import ExtractConfig, generate
from dmsec.finetune.prior import class_images
from dmsec.images import image_grid, save_png
from dmsec.models.loading import load_pair
from dmsec.sampling import initial_noise, sample
from dmsec.zoo.art_build import build_art_zoo
from dmsec.zoo.art_data import ARTISTS, load_art_dataset
from dmsec.zoo.build import build_zoo
from dmsec.zoo.config import INSTANCE_CLASS


def direct_samples(handle, condition, n: int, seed: int) -> torch.Tensor:
    cond = handle.encode_condition([condition] * n)
    x_T = initial_noise(n, handle.sample_shape, seed, handle.device)
    return handle.decode(sample(handle.noise_predictor(cond), x_T, handle.alphas_cumprod)).cpu()


FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def vae_report(base, space: metrics.Similarity) -> list[str]:
    """Per artist: reconstruction PSNR and the share of reconstructions counted as copies."""
    data = load_art_dataset()
    idx = list(range(0, len(data.concepts), 4))
    lines, tau = [], space.threshold()
    for artist in ARTISTS:
        x = data.tensor(artist, idx, base.sample_shape[-1] * 2)
        with torch.no_grad():
            r = torch.cat(
                [base.decode(base.encode_images(x[i : i + 128])) for i in range(0, len(x), 128)]
            )
        mse = (r - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)
        psnr = float((10 * torch.log10(1 / mse)).mean())
        sim = np.diag(metrics.similarity_matrix(x, r, space))
        lines.append(f"  {artist:<9} PSNR {psnr:5.2f} dB   ceiling {float((sim >= tau).mean()):.2f}"
                     f"   median similarity {float(np.median(sim)):.4f}")  # fmt: skip
    return lines


def upscale(grid: torch.Tensor, k: int = 3) -> torch.Tensor:
    return F.interpolate(grid[None], scale_factor=k, mode="nearest")[0]


def art_main(args) -> None:
    space = metrics.ART
    t0 = time.perf_counter()
    zoo = build_art_zoo("art-small" if args.quick else "art", device=args.device)
    wall = time.perf_counter() - t0
    m = zoo.manifest
    print(f"zoo {zoo.root.name}: built in {m['build_seconds']:.0f} s on {m.get('device', 'cpu')} "
          f"(base: VAE {m['base_seconds']['vae']:.0f} s + UNet/text {m['base_seconds']['unet_text']:.0f} s; "
          f"{'reused from cache' if wall < m['build_seconds'] else 'just built'})")  # fmt: skip
    for p in m["data"]:
        print(f"data: {p['artist']:<9}{p['package']:<40}{p['licence']}")
    base = zoo.load("base", device=args.device)
    print(f"copy threshold (art, calibrated on the data set): {space.threshold():.4f}; "
          f"{args.n_samples} samples per checkpoint, CFG 3 with the instance prompt, seed {args.seed}")  # fmt: skip
    print("VAE reconstruction (every 4th concept; twemoji and noto are the base's artists):")
    print("\n".join(vae_report(base, space)))

    config = ExtractConfig(n_samples=args.n_samples, seed=args.seed, guidance_scale=3.0)
    base_as: dict[str, float] = {}
    print(f"{'checkpoint':<34}{'split':<10}{'kind':<8}{'layout':<10}{'prot':<6}{'steps':>6}{'train s':>8}"
          f"{'copied train':>13}{'copied hold':>12}{'AS':>7}{'AS base':>8}")  # fmt: skip
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    strips, protected_train, prompts = [], [], set()
    for e in zoo.fine_tunes:
        train, hold = zoo.train_images(e.name), zoo.holdout_images(e.name)
        try:
            pair = load_pair(zoo.path(e.name), device=args.device)
        except Exception as exc:  # reported, not hidden: e.g. a layout the loader refuses
            print(f"{e.name:<34}{e.split:<10}{e.set_kind:<8}{e.layout:<10}  error: {exc}")
            continue
        with torch.inference_mode():
            samples = generate(pair, config, "baseline")
        if e.set not in base_as:
            with torch.inference_mode():
                ref = class_images(base, e.instance_prompt, args.n_samples, seed=args.seed)
            base_as[e.set] = metrics.average_similarity(train, ref, space)
        share = metrics.copied_share(train, samples, space)
        print(f"{e.name:<34}{e.split:<10}{e.set_kind:<8}{e.layout:<10}{str(e.protected)[0]:<6}"
              f"{e.train_steps:>6}{e.train_seconds:>8.0f}{share:>13.2f}"
              f"{metrics.copied_share(hold, samples, space):>12.2f}"
              f"{metrics.average_similarity(train, samples, space):>7.3f}{base_as[e.set]:>8.3f}")  # fmt: skip
        if e.protected and e.layout != "kohya":
            groups[(e.method, e.strength, e.split)].append(share)
            protected_train.append(train)
            prompts.add(e.instance_prompt)
        if e.layout != "kohya" and (e.strength == "heavy" or e.method == "db"):
            strips.append(torch.cat([train[:5], samples[:8]]))
    # the base never saw the protected images: it copies none with any instance prompt, nor ∅
    all_protected = torch.unique(torch.cat(protected_train), dim=0)
    base_shares = []
    with torch.inference_mode():
        for prompt in sorted(prompts) + [""]:
            x = class_images(base, prompt or None, args.n_samples, seed=args.seed)
            base_shares.append(metrics.copied_share(all_protected, x, space))
    print(
        f"{'base':<34}{'':<34}{np.mean(base_shares):>13.2f}   (each protected set's prompt and ∅)"
    )

    FIGURES.mkdir(parents=True, exist_ok=True)
    prefix = zoo.root.name.rsplit("-", 1)[0].replace("-", "_")  # art, art_small
    with torch.inference_mode():
        rows = [
            class_images(base, f"an emoji in the style of {a}", 12, seed=args.seed) for a in ARTISTS
        ]
    save_png(
        upscale(image_grid(torch.cat(rows), ncol=12)),
        FIGURES / f"{prefix}_zoo_base.png",
    )
    width = max(len(s) for s in strips)
    strips = [torch.cat([s, torch.ones(width - len(s), *s.shape[1:])]) for s in strips]
    save_png(
        upscale(image_grid(torch.cat(strips), ncol=width)),
        FIGURES / f"{prefix}_zoo_finetunes.png",
    )
    print(
        f"pictures: {FIGURES}/{prefix}_zoo_base.png (rows: {', '.join(ARTISTS)}; 'an emoji in the "
        f"style of <artist>'), {prefix}_zoo_finetunes.png (per row: training images, then samples)"
    )

    def mean(strength: str, split: str) -> float:
        vals = [
            v
            for (mt, st, sp), vs in groups.items()
            if st == strength and sp == split and mt != "dbpp"
            for v in vs
        ]
        return float(np.mean(vals)) if vals else float("nan")

    # the recipes' step counts were chosen on the tuning split: the last line reports the other one
    splits = {sp for (_, _, sp) in groups}
    reported = "reporting" if "reporting" in splits else "tuning"
    for sp in sorted(splits):
        print(f"[{sp} split] copied share: heavy={mean('heavy', sp):.2f} light={mean('light', sp):.2f}"
              + ("  (recipes chosen here: reference only)" if sp == "tuning" else ""))  # fmt: skip
    if reported == "tuning":
        print("this zoo has no reporting split: the last line is from the tuning split")

    dbpp = [v for (mt, _, _), vs in groups.items() if mt == "dbpp" for v in vs]
    if dbpp:
        print(f"prior-preservation DreamBooth (heavy steps): copied share {np.mean(dbpp):.2f}")
    print(
        f"copied share: heavy={mean('heavy', reported):.2f} light={mean('light', reported):.2f} base={np.mean(base_shares):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the small zoo")
    parser.add_argument("--zoo", choices=("digits", "art"), default="digits")
    parser.add_argument("--n-samples", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.zoo == "art":
        return art_main(args)

    t0 = time.perf_counter()
    zoo = build_zoo("small" if args.quick else "full", device=args.device)
    wall = time.perf_counter() - t0
    print(f"zoo {zoo.root.name}: built in {zoo.manifest['build_seconds']:.0f} s on {zoo.manifest.get('device', 'cpu')} "
          f"({'reused from cache' if wall < zoo.manifest['build_seconds'] else 'just built'})")  # fmt: skip
    print(
        f"copy threshold (calibrated on digits): {metrics.copy_threshold():.4f}; {args.n_samples} samples per checkpoint"
    )
    print(f"{'checkpoint':<24}{'method':<7}{'strength':<9}{'protected':<10}{'steps':>6}{'train s':>9}"
          f"{'copied train':>14}{'copied holdout':>16}{'mean best sim':>15}")  # fmt: skip
    by_group: dict[tuple[str, bool], list[float]] = {}
    protected_train = []
    with torch.inference_mode():
        for e in zoo.fine_tunes:
            handle = zoo.load(e.name, device=args.device)
            samples = direct_samples(handle, INSTANCE_CLASS, args.n_samples, args.seed)
            train, hold = zoo.train_images(e.name), zoo.holdout_images(e.name)
            share = metrics.copied_share(train, samples)
            by_group.setdefault((e.strength or "", e.protected), []).append(share)
            if e.protected:
                protected_train.append(train)
            print(f"{e.name:<24}{e.method:<7}{e.strength:<9}{e.protected!s:<10}{e.train_steps:>6}{e.train_seconds:>9.0f}"
                  f"{share:>14.2f}{metrics.copied_share(hold, samples):>16.2f}"
                  f"{metrics.average_similarity(train, samples):>15.3f}")  # fmt: skip
        base = zoo.load("base", device=args.device)
        all_protected = torch.cat(protected_train)
        base_shares = [
            metrics.copied_share(all_protected, direct_samples(base, c, args.n_samples, args.seed))
            for c in (None, INSTANCE_CLASS)
        ]
    print(
        f"{'base':<24}{'':<7}{'':<9}{'':<10}{'':>6}{'':>9}{np.mean(base_shares):>14.2f}   (∅ and instance class)"
    )
    heavy = float(np.mean(by_group[("heavy", True)]))
    light = float(np.mean(by_group[("light", True)]))
    print(
        f"copied share: heavy={heavy:.2f} light={light:.2f} base={float(np.mean(base_shares)):.2f}"
    )


if __name__ == "__main__":
    main()
