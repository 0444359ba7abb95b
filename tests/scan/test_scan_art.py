"""Scan settings follow the data: the clustering space and guidance preset from each checkpoint's
model, the registry embedder from the registry's own embedders and images, never from the
source's name; explicit settings win. And (where the art zoo is built) the art zoo end to end."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from scan_helpers import make_hub, scan_config

from dmsec.errors import ConfigError
from dmsec.extract import ExtractConfig, guidance_preset
from dmsec.match import ProtectedArtworkIndex
from dmsec.scan import load_scan_config
from dmsec.scan.config import SCAN_EXTRACT
from dmsec.scan.resolve import resolve_scan


def test_scan_extract_settings_are_chosen_from_each_checkpoints_model(tiny_unet, tiny_sd):
    assert SCAN_EXTRACT.similarity is None and SCAN_EXTRACT.defaults is None  # "from the model"
    # a grey class-conditional UNet: the digit zoo's settings, exactly the scan's defaults before
    # they were chosen per model (so the digit zoo's findings do not change)
    grey, chosen = SCAN_EXTRACT.fitted(tiny_unet)
    assert grey == ExtractConfig(n_samples=256, steps=25, defaults=guidance_preset("zoo"))
    assert chosen == {"similarity": "zoo", "defaults": "zoo", "why": "grey 8x8 images"}
    # a colour latent-diffusion model: the art space; the art zoo's preset up to 64 px
    colour, chosen = SCAN_EXTRACT.fitted(tiny_sd)
    side = int(chosen["why"].split()[1].split("x")[0])
    assert colour.similarity == "art" and chosen["why"].startswith("colour ")
    assert colour.defaults == guidance_preset("art" if side <= 64 else "paper")
    # explicit values win, and only what is left null is chosen
    explicit = load_scan_config(None, ["extract.similarity=zoo", "extract.defaults=paper"]).extract
    assert explicit.fitted(tiny_sd) == (explicit, {})
    half = load_scan_config(None, ["extract.defaults=paper"]).extract
    config, chosen = half.fitted(tiny_sd)
    assert config.defaults == guidance_preset("paper") and set(chosen) == {"similarity", "why"}


def _registry(path, images: list[np.ndarray], embedders: list[str]) -> str:
    registry = ProtectedArtworkIndex.create(path, embedders=embedders)
    report = registry.add(images, owner="o", title=[f"t{i}" for i in range(len(images))])
    assert not report.errors
    return str(path)


def _colour(n: int, side: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((side, side, 3), dtype=np.float32) for _ in range(n)]


def _grey(n: int, side: int) -> list[np.ndarray]:
    return [np.repeat(im[..., :1], 3, axis=2) for im in _colour(n, side)]


@pytest.mark.parametrize(
    ("images", "embedders", "expected", "why"),
    [
        (_colour(3, 32), ["art"], "art", "the registry's only embedder"),
        (_colour(3, 32), ["pdq", "zoo", "art"], "art", "3 small colour images (32x32): art"),
        (_grey(3, 16), ["pdq", "art", "zoo"], "zoo", "3 small grey images (16x16): zoo"),
        (_colour(3, 32), ["pdq", "zoo"], "zoo", "3 small images (32x32): zoo"),  # no colour code
        (_colour(2, 96), ["zoo", "pdq"], "pdq", "2 images of artwork size (96x96): pdq"),
    ],
    ids=["only", "colour32", "grey16", "no-colour-code", "artwork-size"],
)
def test_scan_registry_embedder_is_the_registrys_own_that_fits_its_images(
    tmp_path, images, embedders, expected, why
):
    location = _registry(tmp_path / "registry", images, embedders)
    lines: list[str] = []
    config = load_scan_config(None, [f"registry.location={location}", f"results.out={tmp_path / 'out'}"])  # fmt: skip
    resolved = resolve_scan(config, lines.append)
    assert resolved.embedder == expected and why in (resolved.embedder_reason or "")
    assert resolved.stage_kwargs("match", tmp_path)["embedder"] == expected
    assert [line for line in lines if "registry embedder" in line] == [
        f"registry embedder {expected}: {resolved.embedder_reason} (registry.embedder overrides)"
    ]  # said once, with why
    # an explicit embedder wins and is not announced; the hash follows the embedder matched with
    other = next(e for e in embedders if e != expected) if len(embedders) > 1 else None
    if other is not None:
        lines.clear()
        forced = resolve_scan(config.replace(registry={"embedder": other}), lines.append)
        assert forced.embedder == other and forced.embedder_reason is None and not lines
        assert forced.config_hash != resolved.config_hash
    same = resolve_scan(config.replace(registry={"embedder": expected}))
    assert same.config_hash == resolved.config_hash  # chosen or set, the same scan


def test_scan_registry_of_small_and_artwork_size_images_asks_for_an_embedder(tmp_path):
    location = _registry(tmp_path / "registry", _colour(2, 32) + _colour(2, 96), ["pdq", "art"])
    config = load_scan_config(None, [f"registry.location={location}", f"results.out={tmp_path / 'out'}"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"`registry.embedder`: .* set it to one of \['pdq', 'art'\]"):  # fmt: skip
        resolve_scan(config)
    assert resolve_scan(config.replace(registry={"embedder": "pdq"})).embedder == "pdq"


def test_scan_hash_changes_with_a_setting_that_changes_findings(tmp_path, zoo_registry):
    config = load_scan_config(None, [f"registry.location={zoo_registry}", f"results.out={tmp_path}"])  # fmt: skip
    auto = resolve_scan(config)
    assert auto.embedder == "zoo"  # the zoo registry's only embedder
    hashes = {auto.config_hash}
    for override in ("extract.similarity=art", "extract.defaults=paper", "extract.similarity=zoo"):
        hashes.add(resolve_scan(load_scan_config(None, [f"registry.location={zoo_registry}", f"results.out={tmp_path}", override])).config_hash)  # fmt: skip
    assert len(hashes) == 4


def _built_art_zoo():
    """The full art zoo if this machine has built it (`make art-zoo`, ~1 h on 2 CPU cores)."""
    from dmsec.zoo.art_build import art_zoo_dir, resolve_art_config
    from dmsec.zoo.build import MANIFEST, Zoo

    root = art_zoo_dir(resolve_art_config("art"))
    return Zoo(root) if (root / MANIFEST).exists() else None


@pytest.mark.slow
@pytest.mark.skipif(
    _built_art_zoo() is None, reason="the art zoo is not built here: `make art-zoo` (~1 h)"
)
def test_art_zoo_scan_finds_the_protected_sets_not_the_controls_in_both_lora_layouts(tmp_path):
    from dmsec.scan import build_zoo_registry, run_scan

    zoo = _built_art_zoo()
    protected = ["marine-noto-db-heavy", "marine-noto-lora-heavy", "marine-noto-lora-heavy-kohya"]
    controls = ["control-bird-twemoji-db-heavy", "control-bird-twemoji-lora-heavy-kohya"]
    hub = make_hub(tmp_path / "hub", zoo, protected + controls)
    registry = tmp_path / "registry"
    build_zoo_registry(zoo.root, registry)  # every protected set's training images, embedder art
    # no space, preset or embedder named: they follow the models (colour 32x32) and the registry
    config = scan_config(
        hub, registry, tmp_path / "out", tmp_path / "cache",
        extract={"n_samples": 32}, authenticate={"steps": 20, "baseline_draws": 4},
        run={"executor": "local"},
    )  # fmt: skip
    summary = run_scan(config, echo=lambda _: None)
    rows = {r["repo_id"]: r for r in pq.read_table(tmp_path / "out" / "checkpoints").to_pylist()}
    assert set(rows) == set(protected + controls)
    assert all(r["status"] == "ok" for r in rows.values()), {k: r["error"] for k, r in rows.items()}
    matches = pq.read_table(tmp_path / "out" / "matches").to_pylist()
    found = {m["repo_id"] for m in matches}
    assert found == set(protected)  # kohya and PEFT layouts alike; no control matches
    assert all(m["artwork_title"].startswith("marine-noto/") for m in matches)
    assert summary.counts() == {"ok": 5}
