"""Benchmark: the corruption stage of few-shot fine-tuning, vanilla vs Bayesian (arXiv 2405.19931).

Setting (fixed before the comparison was run):
- data and base: the small zoo's base model and the 5 training images of its set `full-7a`
  (digit 7, never seen by the base, bound to the instance class 11), as in the zoo;
- recipe: full fine-tune, batch 10, AdamW, constant lr 1e-3. The zoo's full recipe uses 1e-4, but
  there the tiny UNet shows no corruption stage: in a pilot vanilla run (seed 1, 32 samples,
  every 50 steps) fidelity rose steadily over 1,000 steps (maximum drawdown 0.010, the level of
  evaluation noise), so there is nothing to mitigate. At 1e-3 (the zoo's LoRA lr) vanilla runs show episodes of noisy generations with
  falling fidelity. The lr was chosen from pilot runs; seed-1 pilots of both methods were seen;
- Bayesian: the "scripts" preset the authors ran (σ_init = σ_p = 0.01, λ = 0) on the paper's
  layers (`dmsec.finetune.bayesian`: at this scale the 16 self-attention Linears of the lowest
  blocks, ~6% of the weights); the default run also shows the "parser" preset (σ = 0.02,
  λ = 0.2) for seed 1 as an ablation;
- pairing: for each training seed both methods draw the same batches, t and ε;
- evaluation every `every` steps (and at step 0): `n_samples` generations of the instance class
  with deterministic DDIM (20 steps) from the same initial noise; the Bayesian model is evaluated
  at its mean (σ = 0), as at inference. Measures (`dmsec.finetune.corruption`): fidelity = mean
  over samples of the best similarity to a training image; hf = share of spectral power above
  0.25 cycles/pixel (noise patterns); diversity = mean pairwise dissimilarity.

Dip (defined before looking at any result): for one run, the maximum drawdown of its fidelity
curve, max_j (max_{i ≤ j} f_i − f_j) over the evaluation points including step 0 — the deepest
fall of fidelity below an earlier peak, whether or not it recovers; 0 if fidelity never falls.
A method's dip is the mean over training seeds of its runs' dips. Target: Bayesian dip at most
half of the vanilla one.

Also FineXtract's A-ESR (N0 = 5, paper defaults w = 3, k = −0.02) on both seed-1 final models:
does Bayesian fine-tuning change how much can be extracted?

The art zoo (`--zoo art`, benchmarks/corruption_art.py): DreamBooth with prior preservation on a
miniature SD, settings chosen on the tuning split, figures on the reporting split.

Usage: ``python benchmarks/corruption.py [--quick] [--zoo digits|art]``. Default: seeds 1-3, 800 steps, 48 samples
(<= 30 min on 2 cores); ``--quick``: seed 1, 300 steps, 32 samples (<= 5 min). The last line is
``dip vanilla=<a> bayesian=<b>``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmsec.extract import ExtractConfig, extract  # noqa: E402
from dmsec.finetune.bayesian import (  # noqa: E402
    BayesConfig,
    gaussian_weights,
    make_bayesian,
    posterior_mean,
)
from dmsec.finetune.corruption import (  # noqa: E402
    diversity,
    fidelity,
    fidelity_dip,
    high_frequency_energy,
)
from dmsec.finetune.vanilla import TrainConfig, train  # noqa: E402
from dmsec.metrics import average_similarity, copy_threshold, extraction_success_rate  # noqa: E402
from dmsec.models.base import DiffusionModel  # noqa: E402
from dmsec.models.pair import make_pair  # noqa: E402
from dmsec.sampling import initial_noise, sample  # noqa: E402
from dmsec.zoo.build import build_zoo  # noqa: E402
from dmsec.zoo.config import INSTANCE_CLASS  # noqa: E402

SET = "full-7a-heavy"
LR = 1e-3
BATCH = 10
DDIM_STEPS = 20
EVAL_SEED = 123


@dataclass
class Run:
    """One fine-tuning run's curve: (step, fidelity, hf, diversity) per evaluation."""

    method: str
    seed: int
    rows: list[tuple[int, float, float, float]] = field(default_factory=list)
    model: DiffusionModel | None = None
    seconds: float = 0.0

    @property
    def dip(self) -> float:
        return fidelity_dip([r[1] for r in self.rows])

    def dip_span(self) -> tuple[int, int]:
        """Steps of the peak and of the trough of the worst drawdown."""
        best, peak_i, span, worst = -np.inf, 0, (0, 0), -1.0
        for i, row in enumerate(self.rows):
            if row[1] > best:
                best, peak_i = row[1], i
            if best - row[1] > worst:
                worst, span = best - row[1], (self.rows[peak_i][0], row[0])
        return span


def evaluate(model: DiffusionModel, x_T: torch.Tensor, images: torch.Tensor) -> tuple[float, ...]:
    """Fidelity, high-frequency energy and diversity of generations from `x_T` (mean network)."""
    cond = model.encode_condition([INSTANCE_CLASS] * len(x_T))
    with posterior_mean(model.network):
        x0 = sample(model.noise_predictor(cond), x_T, model.alphas_cumprod, steps=DDIM_STEPS)
    samples = model.decode(x0)
    return fidelity(samples, images), high_frequency_energy(samples), diversity(samples)


def run_curve(
    base: DiffusionModel,
    images: torch.Tensor,
    method: str,
    bayes: BayesConfig | None,
    seed: int,
    steps: int,
    every: int,
    n_samples: int,
) -> Run:
    """Fine-tune a copy of `base`, evaluating at step 0 and every `every` steps."""
    model = copy.deepcopy(base)
    x_T = initial_noise(n_samples, model.sample_shape, EVAL_SEED)
    run = Run(method, seed, [(0, *evaluate(model, x_T, images))])

    def on_step(step: int, loss: float) -> None:
        if (step + 1) % every == 0:
            run.rows.append((step + 1, *evaluate(model, x_T, images)))

    config = TrainConfig(steps=steps, batch_size=BATCH, lr=LR, seed=seed, bayes=bayes)
    t0 = time.perf_counter()
    train(model, images, [INSTANCE_CLASS] * len(images), config, progress=False, on_step=on_step)
    run.seconds = time.perf_counter() - t0
    run.model = model
    print(f"  {method} seed {seed}: {run.seconds:.0f} s", file=sys.stderr, flush=True)
    return run


def mean_curve(runs: list[Run]) -> np.ndarray:
    return np.mean([np.array(r.rows) for r in runs], axis=0)


def print_curves(vanilla: list[Run], bayesian: list[Run]) -> None:
    v, b = mean_curve(vanilla), mean_curve(bayesian)
    header = "fidelity  hf-energy  diversity"
    print(f"{'step':>5} | vanilla:  {header} | bayesian: {header}")
    for rv, rb in zip(v, b, strict=True):
        cells = [
            f"{rv[1]:8.4f}  {rv[2]:9.4f}  {rv[3]:9.4f}",
            f"{rb[1]:8.4f}  {rb[2]:9.4f}  {rb[3]:9.4f}",
        ]
        print(f"{int(rv[0]):>5} |           {cells[0]} |           {cells[1]}")


def a_esr(
    base: DiffusionModel, model: DiffusionModel, images: torch.Tensor, n: int
) -> tuple[float, float]:
    """FineXtract's A-ESR at the zoo's copy threshold, and AS, for one fine-tune."""
    result = extract(make_pair(base, model), ExtractConfig(n_samples=n, n_groups=len(images)))
    return extraction_success_rate(images, result.images), average_similarity(images, result.images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="seed 1, 300 steps, 32 samples")
    parser.add_argument("--zoo", choices=("digits", "art"), default="digits")
    art = parser.add_argument_group("art zoo only (benchmarks/corruption_art.py)")
    art.add_argument("--split", choices=("tuning", "reporting"), default="reporting",
                     help="tuning: choose settings (vanilla and both presets); reporting: report")  # fmt: skip
    art.add_argument("--seeds", help="comma-separated training seeds (default 1,2; quick 1)")
    art.add_argument("--steps", type=int, help="training steps per run (default: the chosen)")
    art.add_argument("--lr", type=float, help="constant learning rate (default: the chosen)")
    art.add_argument("--preset", choices=("scripts", "parser"), help="Bayesian preset")
    args = parser.parse_args()
    if args.zoo == "art":
        import corruption_art  # benchmarks/ is on the path when run as a script

        return corruption_art.run(args)
    given = [f for f in ("seeds", "steps", "lr", "preset") if getattr(args, f) is not None]
    if given or args.split != "reporting":
        parser.error(f"--split/--{'/--'.join(given or ['split'])} apply to --zoo art only")
    seeds, steps, every, n_samples = ([1], 300, 25, 32) if args.quick else ([1, 2, 3], 800, 25, 48)
    started = time.perf_counter()
    zoo = build_zoo("small", progress=False)
    base = zoo.load("base")
    images = zoo.train_images(SET)
    bayes = BayesConfig.preset("scripts")
    probe = copy.deepcopy(base.network)
    layers = make_bayesian(probe, bayes)
    n_bayes = sum(g.sigma.numel() for g in gaussian_weights(probe))
    n_all = sum(p.numel() for p in base.network.parameters())
    print(
        f"corruption stage: small zoo, set {SET} ({len(images)} images of digit 7 -> class "
        f"{INSTANCE_CLASS}), full fine-tune, lr {LR:g}, batch {BATCH}, {steps} steps, seeds {seeds}"
    )
    print(
        f"bayesian: preset scripts (sigma_init={bayes.sigma_init}, sigma_prior={bayes.sigma_prior}, "
        f"lambda={bayes.kl_weight}); {len(layers)} Linear layers, {n_bayes:,} of {n_all:,} weights"
    )
    print(
        f"eval: {n_samples} samples, DDIM {DDIM_STEPS} steps, every {every} steps; Bayesian at sigma=0"
    )
    vanilla, bayesian = [], []
    for seed in seeds:
        vanilla.append(run_curve(base, images, "vanilla", None, seed, steps, every, n_samples))
        bayesian.append(run_curve(base, images, "bayesian", bayes, seed, steps, every, n_samples))
    print()
    print_curves(vanilla, bayesian)
    print()
    for runs in (vanilla, bayesian):
        parts = [
            f"seed {r.seed}: {r.dip:.4f} (steps {r.dip_span()[0]}->{r.dip_span()[1]})" for r in runs
        ]
        print(f"dip {runs[0].method:<8} " + "; ".join(parts))
    if not args.quick:
        parser_run = run_curve(
            base,
            images,
            "bayesian-parser",
            BayesConfig.preset("parser"),
            seeds[0],
            steps,
            every,
            n_samples,
        )
        final = parser_run.rows[-1]
        print(
            f"ablation, seed {seeds[0]}, preset parser (sigma 0.02/0.02, lambda 0.2): "
            f"dip {parser_run.dip:.4f} (steps {parser_run.dip_span()[0]}->"
            f"{parser_run.dip_span()[1]}), final fidelity {final[1]:.4f} hf {final[2]:.4f}"
        )
    n_extract = 32 if args.quick else 64
    scores = {}
    for runs in (vanilla, bayesian):
        assert runs[0].model is not None
        scores[runs[0].method] = a_esr(base, runs[0].model, images, n_extract)
    print(
        f"FineXtract A-ESR (tau={copy_threshold():.4f}, {n_extract} samples, N0={len(images)}), "
        f"seed-{seeds[0]} final models: vanilla={scores['vanilla'][0]:.2f} (AS {scores['vanilla'][1]:.4f}) "
        f"bayesian={scores['bayesian'][0]:.2f} (AS {scores['bayesian'][1]:.4f})"
    )
    dip_v = float(np.mean([r.dip for r in vanilla]))
    dip_b = float(np.mean([r.dip for r in bayesian]))
    verdict = "met" if dip_b <= dip_v / 2 else "not met"
    print(
        f"target (bayesian dip <= half the vanilla dip): {verdict}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    print(f"dip vanilla={dip_v:.4f} bayesian={dip_b:.4f}")


if __name__ == "__main__":
    main()
