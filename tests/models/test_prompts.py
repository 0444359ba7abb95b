"""Prompt discovery: the sources' order, kohya trigger words, caps on hostile hub text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dmsec.models.prompts import (
    HUB_TRAINED_WORDS,
    HUB_WIDGET_PROMPTS,
    MAX_PROMPT_CHARS,
    Prompt,
    PublishedText,
    discover_prompt,
    kohya_trigger,
    published_text,
)
from dmsec.models.readme import MAX_FRONT_MATTER_BYTES, clean_text, readme_fields

ALL = PublishedText(
    card_prompt="card prompt",
    readme_prompt="readme prompt",
    kohya={"ss_tag_frequency": json.dumps({"10_zkq cat": {"zkq cat": 3}})},
    trained_words=("trained", "words"),
    widget_prompts=("widget prompt", "second"),
)


@pytest.mark.parametrize(
    ("dropped", "expected"),
    [((), Prompt("card prompt", "card")),
     (("card_prompt",), Prompt("readme prompt", "readme")),
     (("card_prompt", "readme_prompt"), Prompt("zkq cat", "kohya")),
     (("card_prompt", "readme_prompt", "kohya"), Prompt("trained, words", "civitai")),
     (("card_prompt", "readme_prompt", "kohya", "trained_words"), Prompt("widget prompt", "widget")),
     (("card_prompt", "readme_prompt", "kohya", "trained_words", "widget_prompts"), Prompt(None, "none"))],
)  # fmt: skip
def test_sources_are_tried_in_order(dropped, expected):
    empty = {"card_prompt": None, "readme_prompt": None, "kohya": None, "trained_words": (), "widget_prompts": ()}  # fmt: skip
    published = PublishedText(**{**ALL.__dict__, **{k: empty[k] for k in dropped}})
    assert discover_prompt(published) == expected


def test_kohya_trigger_prefers_the_rare_words_and_the_dataset_folder():
    frequency = {"5_ohwx woman": {"ohwx woman": 20, "smile": 12, "solo": 20, "zxq hat": 8, "outdoors": 3}}  # fmt: skip
    meta = {"ss_tag_frequency": json.dumps(frequency),
            "ss_dataset_dirs": json.dumps({"5_ohwx woman": {"n_repeats": 5, "img_count": 20}})}  # fmt: skip
    vocabulary = frozenset({"woman", "smile", "solo", "outdoors", "hat"})
    # folder words, the tags in every caption, then the most frequent tag with a rare word
    assert kohya_trigger(meta, vocabulary) == "ohwx woman, solo, zxq hat"
    # a natural-language caption holding the folder's words replaces them
    sentence = {"ss_tag_frequency": json.dumps({"10_sks dog": {"a photo of sks dog": 4}})}
    assert kohya_trigger(sentence, vocabulary) == "a photo of sks dog"
    # no captions recorded: the folder's `<repeats>_<words>` alone
    assert kohya_trigger({"ss_dataset_dirs": json.dumps({"20_zkz cat": {"img_count": 5}})}) == "zkz cat"  # fmt: skip
    assert kohya_trigger({"ss_tag_frequency": "not json"}) is None
    # ordinary words in only some captions name no trigger
    ordinary = {"ss_tag_frequency": json.dumps({"images": {"smile": 3, "solo": 1}}),
                "ss_dataset_dirs": json.dumps({"images": {"n_repeats": 1, "img_count": 4}})}  # fmt: skip
    assert kohya_trigger(ordinary, vocabulary) is None


def test_hostile_text_is_cleaned_and_capped():
    evil = "<script>alert(1)</script>\x00\x1b[31m\u202e" + "sks " * 500
    prompt = discover_prompt(PublishedText(readme_prompt=evil))
    assert prompt.source == "readme" and prompt.text is not None
    assert len(prompt.text) <= MAX_PROMPT_CHARS
    assert not any(ch in prompt.text for ch in "\x00\x1b\u202e\n")
    assert clean_text("  a\n\tb  ") == "a b" and clean_text(["list"]) is None and clean_text("\x00") is None  # fmt: skip
    # a tag-frequency table of a million tags is not parsed at all
    huge = {"ss_tag_frequency": json.dumps({"1_x": {f"t{i}": 1 for i in range(200_000)}})}
    assert kohya_trigger(huge) is None


def test_readme_front_matter_as_diffusers_writes_it(tmp_path):
    readme = (
        "---\nlicense: creativeml-openrail-m\nlibrary_name: diffusers\ninference: true\n"
        "base_model: runwayml/stable-diffusion-v1-5\ninstance_prompt: a photo of sks dog\n"
        "widget:\n- text: a photo of sks dog in a bucket\n  output:\n    url: image_0.png\n"
        "tags:\n- text-to-image\n- dreambooth\n---\n\n# DreamBooth - someone/dog\n"
    )
    fields = readme_fields(readme.encode())
    assert fields.base_model == "runwayml/stable-diffusion-v1-5"
    assert fields.instance_prompt == "a photo of sks dog"
    assert fields.widget_prompts == ("a photo of sks dog in a bucket",)
    assert fields.license == "creativeml-openrail-m" and "dreambooth" in fields.tags
    # YAML that would build Python objects, unclosed or oversized front matter: no card
    assert readme_fields(b"---\nbase_model: !!python/object/apply:os.system ['id']\n---\n").empty
    assert readme_fields(b"---\nbase_model: x\n").empty
    assert readme_fields(b"---\na: " + b"x" * MAX_FRONT_MATTER_BYTES + b"\n---\n").empty


def test_published_text_reads_readme_kohya_metadata_and_hub_fields(tmp_path):
    weights = tmp_path / "style.safetensors"
    meta = {"ss_tag_frequency": json.dumps({"8_zkq style": {"zkq style": 8}}), "ss_network_dim": "8"}  # fmt: skip
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(weights), metadata=meta)
    hub = {HUB_TRAINED_WORDS: json.dumps(["zkq style"]), HUB_WIDGET_PROMPTS: json.dumps(["w"])}
    published = published_text(weights, hub)
    assert published.kohya is not None and published.trained_words == ("zkq style",)
    assert discover_prompt(published) == Prompt("zkq style", "kohya")
    (tmp_path / "README.md").write_text("---\ninstance_prompt: from the readme\n---\n")
    assert discover_prompt(published_text(weights, hub)) == Prompt("from the readme", "readme")
    assert discover_prompt(
        published_text(Path(tmp_path / "elsewhere" / "x.safetensors"), {})
    ) == Prompt(None, "none")


def test_loading_a_cardless_dreambooth_folder_and_a_kohya_file_discovers_their_prompts(tmp_path, tiny_sd):  # fmt: skip
    """A diffusers folder with README front matter (no card) and a kohya LoRA with sd-scripts'
    metadata, loaded as a scan loads them: each handle's prompt comes from what was published."""
    import sys

    from peft.utils import get_peft_model_state_dict

    sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))
    from format_fixtures import lora_finetune
    from published import dreambooth_readme, kohya_metadata

    from dmsec.models.loading import load_model
    from dmsec.models.pair import card_condition
    from dmsec.zoo.formats import write_kohya_lora

    base = tiny_sd.save(tmp_path / "base")
    folder = tiny_sd.save(tmp_path / "db")
    (folder / "dmsec_model.json").unlink()
    (folder / "README.md").write_text(dreambooth_readme("me/db", "me/base", "a photo of zkq dog"))
    handle = load_model(folder)
    assert handle.prompt == Prompt("a photo of zkq dog", "readme")
    assert card_condition(handle) == "a photo of zkq dog"  # what FineXtract conditions on
    ft = lora_finetune(tiny_sd)
    captions = ["zkq style, dog, grass", "zkq style, dog", "zkq style, cat, sofa"]
    meta = kohya_metadata("zkq_style", "runwayml/stable-diffusion-v1-5", "10_zkq style", captions)
    kohya = write_kohya_lora(get_peft_model_state_dict(ft.network), None, tmp_path / "k" / "zkq_style.safetensors", metadata=meta)  # fmt: skip
    lora = load_model(kohya, base=base)
    assert lora.prompt is not None and lora.prompt.source == "kohya"
    assert lora.prompt.text is not None and lora.prompt.text.startswith("zkq style")
    # the Civitai version's trained words come after the file's own metadata
    hub = {"trained_words": json.dumps(["zkq civitai"])}
    assert load_model(kohya, base=base, hub=hub).prompt == lora.prompt
