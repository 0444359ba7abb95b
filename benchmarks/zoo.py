"""How much does each zoo checkpoint memorise? Build time, and per checkpoint the share of its
training images (and hold-outs) that direct sampling with the instance class copies.

    python benchmarks/zoo.py            # the full zoo (~15 min to build on 2 cores, then ~1 min)
    python benchmarks/zoo.py --quick    # the small zoo
    python benchmarks/zoo.py --zoo art  # the art zoo (benchmarks/zoo_art.py; --quick: art-small)

Last line: `copied share: heavy=<x> light=<y> base=<z>` — mean share of protected training images
copied by direct sampling of the heavy fine-tunes, of the light ones, and of the base model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dmsec import metrics
from dmsec.sampling import initial_noise, sample
from dmsec.zoo.build import build_zoo
from dmsec.zoo.config import INSTANCE_CLASS


def direct_samples(handle, condition, n: int, seed: int) -> torch.Tensor:
    cond = handle.encode_condition([condition] * n)
    x_T = initial_noise(n, handle.sample_shape, seed, handle.device)
    return handle.decode(sample(handle.noise_predictor(cond), x_T, handle.alphas_cumprod)).cpu()


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
        import zoo_art  # benchmarks/ is on the path when run as a script

        return zoo_art.run(args)

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
