"""Mechanics of the art zoo on a tiny config (about a minute): the data, the tokenizer, the
folder layouts hubs carry (diffusers pipeline, PEFT LoRA, kohya LoRA), the splits and the
DreamBooth options. Whether the real art zoo memorises is measured by benchmarks/zoo.py --zoo art
and the slow end-to-end scan test."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors import safe_open

from dmsec import metrics
from dmsec.errors import ConfigError
from dmsec.models.loading import load_model
from dmsec.zoo.art_build import base_indices, build_art_zoo, set_indices
from dmsec.zoo.art_config import ART, ArtSet, ArtZooConfig, Recipe
from dmsec.zoo.art_data import ARTISTS, PACKAGES, load_art_dataset, verified_tarball
from dmsec.zoo.art_model import ArtModelConfig, build_tokenizer

TINY = ArtZooConfig(
    name="art-tiny",
    model=ArtModelConfig(vae_channels=(8, 16), unet_channels=(16, 32), cross_attention_levels=1,
                         text_width=16, text_layers=1, text_heads=2, norm_groups=8),
    vae_steps=3, vae_batch=4, base_steps=3, base_batch=4,
    recipes=(
        Recipe("db", lr=1e-4, light_steps=1, heavy_steps=2, batch_size=2, train_text_encoder=True),
        Recipe("dbpp", lr=1e-4, light_steps=1, heavy_steps=2, batch_size=2,
               train_text_encoder=True, prior_weight=1.0),
        Recipe("lora", lr=1e-3, light_steps=1, heavy_steps=2, batch_size=2, lora_rank=2),
    ),
    protected_runs=(("db", "light"), ("dbpp", "heavy"), ("lora", "light")),
    control_runs=(("db", "heavy"),),
    n_class_images=2,
    sets=(
        ArtSet("fruit-twemoji", "subject", "twemoji", "tuning", subcategory="food-fruit",
               n_train=2, n_holdout=2),
        ArtSet("fluent-a", "style", "fluent", "reporting", n_train=2, n_holdout=2,
               protected=False),
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_art_zoo(tmp_path_factory):
    return build_art_zoo(TINY, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def test_data_set_is_four_artists_of_the_same_concepts():
    data = load_art_dataset()
    assert set(data.images) == set(ARTISTS)
    for images in data.images.values():
        assert images.shape == (len(data.concepts), 64, 64, 3) and images.dtype == np.uint8
    assert len(data.concepts) >= 1500
    # the same concept by two artists is more alike than two concepts by one artist
    x = {a: data.tensor(a, list(range(200)), 32) for a in ("twemoji", "noto")}
    same = np.diag(metrics.similarity_matrix(x["twemoji"], x["noto"], metrics.ART)).mean()
    other = metrics.similarity_matrix(x["twemoji"][:100], x["noto"][100:], metrics.ART).mean()
    assert same > other + 0.2


def test_missing_or_tampered_package_is_a_clear_error(tmp_path):
    pkg = PACKAGES[0]
    with pytest.raises(ConfigError, match="fetch-data"):
        verified_tarball(pkg, tmp_path)
    (tmp_path / pkg.tarball).write_bytes(b"not the package")
    with pytest.raises(ConfigError, match="sha256"):
        verified_tarball(pkg, tmp_path)


def test_tokenizer_makes_every_prompt_word_one_token():
    tok = build_tokenizer(["red apple in the style of twemoji", "an emoji in the style of sks"], 12)
    assert tok.tokenize("Red apple in the style of sks") == [
        f"{w}</w>" for w in ("red", "apple", "in", "the", "style", "of", "sks")
    ]
    assert len(tok("red apple", padding="max_length", max_length=12).input_ids) == 12


def test_the_recorded_art_threshold_is_the_one_the_data_gives():
    from dmsec.zoo.presets import ART_COPY_THRESHOLD, art_copy_threshold

    assert art_copy_threshold() == ART_COPY_THRESHOLD  # needs no data
    assert art_copy_threshold(recompute=True) == ART_COPY_THRESHOLD


def test_art_copy_threshold_separates_copies_from_other_drawings():
    tau = metrics.art_copy_threshold()
    assert 0.9 < tau < 0.99
    data = load_art_dataset()
    x = data.tensor("noto", [10, 500], 32)
    noisy = (x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(
        0, 1
    )
    sim = metrics.similarity_matrix(x, noisy, metrics.ART)
    assert sim[0, 0] >= tau and sim[1, 1] >= tau  # a slightly noisy copy is a copy
    assert sim[0, 1] < tau and sim[1, 0] < tau  # another emoji is not


def test_full_config_splits_are_disjoint_and_subjects_unseen_by_the_base():
    data = load_art_dataset()
    base = set(base_indices(data, ART))
    used: dict[tuple[str, int], str] = {}
    for s in ART.sets:
        train, hold = set_indices(data, ART, s)
        assert len(train) == s.n_train and len(hold) == s.n_holdout
        if s.kind == "subject":
            assert not base & set(train + hold)
        else:
            assert s.artist not in ART.base_artists
        for i in train + hold:
            assert (s.artist, i) not in used, f"{s.name} and {used[(s.artist, i)]} share an image"
            used[(s.artist, i)] = s.name
    assert {s.split for s in ART.sets if s.protected} == {"tuning", "reporting"}
    tuning = {s.artist for s in ART.sets if s.split == "tuning" and s.kind == "style"}
    reporting = {s.artist for s in ART.sets if s.split == "reporting" and s.kind == "style"}
    assert tuning and reporting and not tuning & reporting


def test_config_rejects_a_subject_set_the_base_has_seen():
    with pytest.raises(ConfigError, match="held-out"):
        replace(
            ART, sets=(ArtSet("x", "subject", "twemoji", "tuning", subcategory="face-smiling"),)
        )


def test_tiny_build_has_every_layout(tiny_art_zoo):
    z = tiny_art_zoo
    names = {e.name for e in z.entries}
    assert {"base", "fruit-twemoji-db-light", "fruit-twemoji-dbpp-heavy", "fruit-twemoji-lora-light",
            "fruit-twemoji-lora-light-kohya", "fluent-a-db-heavy"} == names  # fmt: skip
    assert z.manifest["image_mode"] == "RGB" and not z.grey
    assert [p["package"] for p in z.manifest["data"]][0].startswith("emoji-datasource-twitter@")
    assert z.train_images("fruit-twemoji-db-light").shape == (2, 3, 32, 32)
    assert (z.root / "class_images" / "fruit-twemoji" / "class_001.png").exists()
    kohya = z.entry("fruit-twemoji-lora-light-kohya")
    assert (
        kohya.layout == "kohya" and kohya.instance_prompt == "a sks emoji in the style of twemoji"
    )
    with safe_open(str(z.path(kohya.name) / f"{kohya.name}.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("lora_unet_") for k in keys)
    assert any(k.endswith(".alpha") for k in keys) and any(".lora_down." in k for k in keys)


def test_build_art_base_alone_is_cached_where_the_zoo_build_resumes_from(tiny_art_zoo, tmp_path):
    from dmsec.zoo.art_build import build_art_base, cached_art_base

    assert cached_art_base(TINY, tmp_path) is None
    base = build_art_base(TINY, cache_dir=tmp_path, progress=False)  # trains the base alone
    assert (base / "model_index.json").exists() and load_model(base).info.kind == "base"
    assert base.parent.name.endswith(".partial")  # the build folder `build_art_zoo` resumes
    assert json.loads((base.parent / "done" / "base.json").read_text())["entries"][0]["name"] == "base"  # fmt: skip
    assert cached_art_base(TINY, tmp_path) == base == build_art_base(TINY, cache_dir=tmp_path)
    built = tiny_art_zoo.root  # a complete zoo: its own base
    assert build_art_base(TINY, cache_dir=built.parent.parent) == built / "base"


def test_a_preset_on_the_same_base_copies_it_instead_of_training_it(tiny_art_zoo, monkeypatch):
    from safetensors.torch import load_file

    from dmsec.zoo import art_build
    from dmsec.zoo.art_config import ART_PARTIAL, shares_base

    more = replace(TINY, name="art-tiny-more", protected_runs=(("lora", "light"),), control_runs=(),
                   sets=(ArtSet("fluent-b", "style", "fluent", "reporting", offset=4, n_train=3, n_holdout=2),))  # fmt: skip
    assert shares_base(more, TINY) and shares_base(ART_PARTIAL, ART)
    assert not shares_base(replace(more, base_steps=4), TINY)  # another schedule: another base
    unseen = ArtSet("emoji-x", "style", "openmoji", "reporting", n_train=2, n_holdout=2)
    assert not shares_base(replace(more, sets=(unseen,)), TINY)  # its tokenizer lacks the artist
    monkeypatch.setitem(art_build.ART_PRESETS, TINY.name, TINY)
    cache = tiny_art_zoo.root.parent.parent
    zoo = build_art_zoo(more, cache_dir=cache, progress=False)
    assert zoo.manifest["base_seconds"]["copied_from"] == TINY.name
    weights = "unet/diffusion_pytorch_model.safetensors"
    a, b = load_file(zoo.root / "base" / weights), load_file(tiny_art_zoo.root / "base" / weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [e.name for e in zoo.fine_tunes] == ["fluent-b-lora-light", "fluent-b-lora-light-kohya"]


def test_art_partial_sets_are_disjoint_from_the_art_zoo_and_larger():
    from dmsec.zoo.art_config import ART_PARTIAL
    from dmsec.zoo.registry import art_catalogue

    works, _ = art_catalogue([ART, ART_PARTIAL])  # raises if a work is in two sets
    for s in ART_PARTIAL.sets:
        assert s.kind == "style" and s.n_train >= 40
        assert sum(w.set == s.name and w.role == "train" for w in works) == s.n_train
    assert {s.split for s in ART_PARTIAL.sets} == {"tuning", "reporting"}


def test_base_loads_in_diffusers_pipeline(tiny_art_zoo):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(tiny_art_zoo.root / "base"), safety_checker=None, requires_safety_checker=False
    )
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    out = pipe("red apple in the style of noto", num_inference_steps=2, height=32, width=32,
               output_type="np", generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.images.shape == (1, 32, 32, 3)


def test_fine_tunes_load_through_our_loader(tiny_art_zoo):
    z = tiny_art_zoo
    base = z.load("base")
    db = z.load("fruit-twemoji-db-light")
    lora = z.load("fruit-twemoji-lora-light")
    assert (
        db.info.instance_prompt
        == lora.info.instance_prompt
        == "a sks emoji in the style of twemoji"
    )

    # DreamBooth trained the text encoder and the UNet, not the VAE
    def changed(a, b):
        return any(
            not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True)
        )

    assert changed(db.text_encoder, base.text_encoder) and changed(db.network, base.network)
    assert not changed(db.vae, base.vae)
    # the LoRA's base weights are the base's; its adapter changes the prediction
    x, t = torch.randn(1, *base.sample_shape), torch.tensor([500])
    cond = lora.encode_condition([lora.info.instance_prompt])
    from dmsec.models.lora import adapters_disabled

    with torch.no_grad(), adapters_disabled(lora.network):
        off = lora.predict_noise(x, t, cond)
    with torch.no_grad():
        on = lora.predict_noise(x, t, cond)
        ref = base.predict_noise(x, t, base.encode_condition([lora.info.instance_prompt]))
    assert torch.allclose(off, ref, atol=1e-5) and not torch.allclose(on, ref, atol=1e-5)
    card = json.loads((z.path("fruit-twemoji-db-light") / "dmsec_model.json").read_text())
    assert card["kind"] == "full" and card["base_model"] == "../base"
    assert load_model(z.path("fruit-twemoji-dbpp-heavy")).info.kind == "full"
