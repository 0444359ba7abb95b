"""The zoos' presets, registered where the library looks them up by name.

- similarity spaces (`dmsec.metrics.SPACES`): "zoo", the Pearson correlation of 16x16 grey
  pixels with its copy threshold calibrated on scikit-learn's digits (`copy_threshold`), and
  "art", the same in colour calibrated on the art zoo's data set (`art_copy_threshold`);
- FineXtract guidance presets (`dmsec.extract.GUIDANCE_PRESETS`): "zoo" (`ZOO_GUIDANCE`, chosen
  on the digit zoo's w sweep) and "art" (`ART_GUIDANCE`, chosen on the art zoo's tuning split).
The library imports no zoo: its tables name this module, imported on the first lookup.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from dmsec.errors import ConfigError
from dmsec.extract.base import GUIDANCE_PRESETS, GuidancePreset
from dmsec.metrics import SPACES, Similarity, art_embedding, zoo_embedding
from dmsec.zoo.art_config import ART_GUIDANCE
from dmsec.zoo.config import ZOO_GUIDANCE

# Quantile of real digits' nearest-other-digit similarity used as the copy threshold.
COPY_QUANTILE = 0.99
# Quantile of the art images' nearest-other similarity used as the art copy threshold.
ART_COPY_QUANTILE = 0.95
DUPLICATE_SIMILARITY = 0.999  # at or above: the same drawing (an emoji reused under two names)
# `art_copy_threshold()` at its defaults (all four artists, the 95th percentile), as computed from
# the pinned data packages (emoji-datasource-twitter and -google 16.0.0, openmoji 17.0.0,
# @iconify-json/fluent-emoji-flat 1.2.6): recorded so scanning colour checkpoints (any SD
# fine-tune on a hub) needs no art data installed; tests/zoo/test_art_zoo.py recomputes it.
ART_COPY_THRESHOLD = 0.9495


@functools.cache
def copy_threshold(quantile: float = COPY_QUANTILE) -> float:
    """The copy threshold calibrated on scikit-learn's digits: the `quantile` of each real
    digit's similarity to its nearest *other* real digit (a sample counts as a copy only when it
    is closer to a training image than almost every real digit is to any other)."""
    from dmsec.zoo.data import load_digit_images

    images, _ = load_digit_images()
    emb = torch.from_numpy(zoo_embedding(images))
    sim = emb @ emb.T
    sim.fill_diagonal_(-1.0)
    nearest_other = sim.max(dim=1).values
    return round(float(torch.quantile(nearest_other, quantile)), 4)


@functools.cache
def art_copy_threshold(
    quantile: float = ART_COPY_QUANTILE,
    artists: tuple[str, ...] | None = None,
    *,
    recompute: bool = False,
) -> float:
    """The copy threshold calibrated on the art zoo's data set (all four artists, or only
    `artists`, e.g. a benchmark's tuning split), as for the digits. At the defaults it is the
    recorded `ART_COPY_THRESHOLD` (no data needed) unless `recompute`; any other quantile or set
    of artists is computed from the data (`dmsec zoo fetch-data`). Two documented differences
    from the digits':

    - neighbours are taken from *other emoji sub-categories*, and identical drawings
      (similarity >= 0.999) count once: a sub-category holds variants of one design (24 clock
      faces, keycaps 0-9, arrows in eight directions, hearts in nine colours) that differ in a few
      pixels, so the nearest image of the same sub-category is a variant, not another picture;
    - the quantile is the 95th, not the 99th: the emoji's upper tail (flat shapes on white) is so
      close to 1 that the 99th percentile (0.985 at 16x16) sits above what a 32x32 image survives
      through any VAE — a copy reproduced by a latent model could never count.
    """
    from dmsec.zoo.art_data import ARTISTS, load_art_dataset

    if quantile == ART_COPY_QUANTILE and artists is None and not recompute:
        return ART_COPY_THRESHOLD
    chosen = ARTISTS if artists is None else tuple(artists)
    if not chosen or set(chosen) - set(ARTISTS):
        raise ConfigError(f"`artists` must be a non-empty subset of {ARTISTS}; got {artists!r}")
    data = load_art_dataset()
    n = len(data.concepts)
    emb = torch.from_numpy(
        np.concatenate([art_embedding(data.tensor(a, list(range(n)), 32)) for a in chosen])
    )
    groups = [c.subcategory for c in data.concepts] * len(chosen)
    ids = {g: i for i, g in enumerate(sorted(set(groups)))}
    group = torch.tensor([ids[g] for g in groups])
    sim = emb @ emb.T
    # identical drawings count once: keep the first of each set of duplicates
    keep = torch.ones(len(emb), dtype=torch.bool)
    for i in range(len(emb)):
        if keep[i]:
            dup = sim[i] >= DUPLICATE_SIMILARITY
            dup[: i + 1] = False
            keep &= ~dup
    sim, group = sim[keep][:, keep], group[keep]
    sim.masked_fill_(group[:, None] == group[None, :], -1.0)
    nearest_other = sim.max(dim=1).values
    return round(float(torch.quantile(nearest_other, quantile)), 4)


DIGITS = SPACES.register("zoo", Similarity("zoo", zoo_embedding, copy_threshold))
ART = SPACES.register("art", Similarity("art", art_embedding, art_copy_threshold))
GUIDANCE_PRESETS.register(
    "zoo", GuidancePreset("zoo", ZOO_GUIDANCE, "the digit zoo's w sweep (benchmarks/extraction.py)")
)
GUIDANCE_PRESETS.register(
    "art",
    GuidancePreset(
        "art", ART_GUIDANCE, "the art zoo's tuning split (benchmarks/extraction.py --zoo art)"
    ),  # fmt: skip
)
