"""Which embedder fits a set of protected images, for a registry created without naming one.

- artwork-size images (both sides at least `SMALL_SIDE` = 64 px, colour or grey): ``pdq``, the
  perceptual hash made for photos and artwork; it hashes a 64x64 luminance downsample, so smaller
  images carry too little structure for it;
- small colour images (a side under 64 px, e.g. the art zoo's 32x32 emoji): ``art``, colour pixels
  compared at 16x16 (grey images among them are compared in colour too);
- small grey images (every pixel R = G = B to 8-bit rounding, e.g. the digit zoo's 16x16
  digits): ``zoo``, grey pixels compared at 16x16.

A set that mixes small and artwork-size images, or has no readable image, has no one embedder
that fits: `EmbedderChoiceError` says why and names the embedders to choose from.

A scan matches with one of the registry's own embedders: `choose_registry_embedder` picks the one
that fits the images the registry holds, by the same rule (their sizes from its table, grey or
colour from its ``art`` codes where it has them). User guide: docs/registry.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dmsec.match.errors import EmbedderError

SMALL_SIDE = 64  # px: below this on either side an image is compared in a pixel space
GREY_TOLERANCE = 1.5 / 255  # channels this close everywhere count as grey (8-bit rounding)
# of a registry's embedders, those that fit each kind of image, best first ("small": small images
# whose colour the registry cannot tell, having no `art` codes; `zoo` is its only pixel space then)
FITTING = {"large": ("pdq",), "small_colour": ("art", "zoo"), "small_grey": ("zoo", "art"),
           "small": ("zoo",)}  # fmt: skip


class EmbedderChoiceError(EmbedderError):
    """No one embedder fits the images; `candidates` are the embedders the caller may pick."""

    def __init__(self, message: str, candidates: tuple[str, ...]) -> None:
        super().__init__(message)
        self.candidates = candidates


@dataclass(frozen=True)
class EmbedderChoice:
    """The embedders chosen for a new registry and why, in words."""

    names: tuple[str, ...]
    reason: str


def is_grey(pixels: np.ndarray) -> bool:
    """True when an (H, W, 3) image in [0, 1] has equal channels everywhere (to 8-bit rounding)."""
    return bool(
        np.abs(pixels[..., 0] - pixels[..., 1]).max(initial=0) <= GREY_TOLERANCE
        and np.abs(pixels[..., 1] - pixels[..., 2]).max(initial=0) <= GREY_TOLERANCE
    )


def choose_embedders(images: Iterable[np.ndarray]) -> EmbedderChoice:
    """The embedder that fits `images` (decoded (H, W, 3) arrays in [0, 1]); see the module
    docstring. Images are looked at one by one and not kept."""
    sizes: dict[str, set[tuple[int, int]]] = {"small_grey": set(), "small_colour": set(), "large": set()}  # fmt: skip
    counts = dict.fromkeys(sizes, 0)
    for pixels in images:
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        if min(height, width) >= SMALL_SIDE:
            kind = "large"
        else:
            kind = "small_grey" if is_grey(pixels) else "small_colour"
        counts[kind] += 1
        sizes[kind].add((width, height))
    small = counts["small_grey"] + counts["small_colour"]
    small_name = "art" if counts["small_colour"] else "zoo"
    if small and counts["large"]:
        raise EmbedderChoiceError(
            f"the images mix {small} small ones ({_sizes(sizes['small_grey'] | sizes['small_colour'])}, "
            f"a side under {SMALL_SIDE} px: {small_name}) and {counts['large']} of artwork size "
            f"({_sizes(sizes['large'])}: pdq); no one embedder fits both",
            candidates=(small_name, "pdq"),
        )
    if counts["large"]:
        return EmbedderChoice(
            ("pdq",),
            f"{counts['large']} images of artwork size ({_sizes(sizes['large'])}, both sides "
            f">= {SMALL_SIDE} px): PDQ perceptual hashes",
        )
    if counts["small_colour"]:
        grey = f", {counts['small_grey']} grey among them" if counts["small_grey"] else ""
        return EmbedderChoice(
            ("art",),
            f"{small} small colour images ({_sizes(sizes['small_colour'] | sizes['small_grey'])}"
            f"{grey}, a side under {SMALL_SIDE} px): colour pixels compared at 16x16, the art zoo's space",  # fmt: skip
        )
    if counts["small_grey"]:
        return EmbedderChoice(
            ("zoo",),
            f"{small} small grey images ({_sizes(sizes['small_grey'])}, a side under {SMALL_SIDE} "
            "px): grey pixels compared at 16x16, the digit zoo's space",
        )
    raise EmbedderChoiceError(
        "no readable image to choose an embedder from", candidates=("pdq", "art", "zoo")
    )


def _sizes(sizes: set[tuple[int, int]]) -> str:
    """'32x32', or the smallest and largest of several sizes."""
    ordered = sorted(sizes, key=lambda s: (s[0] * s[1], s))
    first, last = ordered[0], ordered[-1]
    if first == last:
        return f"{first[0]}x{first[1]}"
    return f"{first[0]}x{first[1]} to {last[0]}x{last[1]}"


def grey_art_codes(codes: np.ndarray) -> np.ndarray:
    """Per ``art`` code (N, 3 * 16 * 16), whether its image is grey: the code is the image's
    mean-centred RGB at 16x16, channel after channel, so a grey image's three blocks are equal
    (to 1e-3: 8-bit rounding moves an entry of a typical image's unit-norm code by less)."""
    red, green, blue = np.split(np.asarray(codes, dtype=np.float32), 3, axis=1)
    return (np.abs(red - green).max(axis=1, initial=0) <= 1e-3) & (
        np.abs(green - blue).max(axis=1, initial=0) <= 1e-3
    )


def choose_registry_embedder(
    names: Sequence[str], sizes: Sequence[tuple[int, int]], grey: Sequence[bool] | None
) -> EmbedderChoice:
    """Of a registry's embedders `names`, the one that fits the images it holds, given their
    (width, height) and whether each is grey (None where the registry cannot tell): its only
    one; else the best of `FITTING` for those images that it has; else its first (its default).
    Raises `EmbedderChoiceError` when it holds both small and artwork-size images."""
    if len(names) == 1:
        return EmbedderChoice((names[0],), "the registry's only embedder")
    held = f"of the registry's embedders {', '.join(names)}"
    if not sizes:
        return EmbedderChoice((names[0],), f"the first {held} (it holds no artwork)")
    small = [i for i, (w, h) in enumerate(sizes) if min(w, h) < SMALL_SIDE]
    if small and len(small) < len(sizes):
        raise EmbedderChoiceError(
            f"the registry holds {len(small)} small images (a side under {SMALL_SIDE} px) and "
            f"{len(sizes) - len(small)} of artwork size; no one embedder fits both",
            candidates=tuple(names),
        )
    if not small:
        kind, words = "large", f"{len(sizes)} images of artwork size"
    elif grey is None:
        kind, words = "small", f"{len(sizes)} small images"
    else:
        kind = "small_colour" if not all(grey[i] for i in small) else "small_grey"
        words = f"{len(sizes)} small {'colour' if kind == 'small_colour' else 'grey'} images"
    size_text = _sizes({(int(w), int(h)) for w, h in sizes})
    for name in FITTING[kind]:
        if name in names:
            return EmbedderChoice((name,), f"{words} ({size_text}): {name}, {held}")
    return EmbedderChoice(
        (names[0],),
        f"{words} ({size_text}): none {held} fits them ({FITTING[kind][0]} would): its first",
    )
