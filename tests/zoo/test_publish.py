"""dmsec.zoo.publish (the published benchmark's fixtures) on the small digit zoo: each arm's hub
lists every publication with the base name and the prompt fields that arm should carry, and the
benchmark runs end to end through its own CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dmsec.hub.local import LocalSource
from dmsec.models.prompts import HUB_INSTANCE_PROMPT, HUB_TRAINED_WORDS
from dmsec.zoo.publish import ARMS, layouts_of, publish, trigger_phrase

ROOT = Path(__file__).resolve().parents[2]


def test_each_arm_publishes_every_layout_with_its_prompt_fields(small_zoo, tmp_path):
    entries = small_zoo.select(protected=True, strength="light")
    assert {layouts_of(e) for e in entries} == {("hf-dreambooth",), ("hf-lora", "civitai")}
    lora = next(e for e in entries if e.kind == "lora")
    for arm in ARMS:
        hub = tmp_path / arm
        for e in entries:
            for layout in layouts_of(e):
                publish(small_zoo.root, e, layout, arm, hub, "me/base", "Other")
        refs = {r.repo_id.split("/")[0]: r for r in LocalSource(hub).list()}
        assert set(refs) == {f"{e.name}-{layout}" for e in entries for layout in layouts_of(e)}
        civitai, hf_lora = refs[f"{lora.name}-civitai"], refs[f"{lora.name}-hf-lora"]
        assert civitai.kind == hf_lora.kind == "lora"
        assert civitai.base_model == "Other" and hf_lora.base_model == "me/base"
        cards = [(hub / name / "dmsec_model.json").exists() for name in refs]
        assert all(cards) if arm == "card" else not any(cards)
        words = json.loads(civitai.extra.get(HUB_TRAINED_WORDS, "[]"))
        if arm == "discovered" and lora.instance_prompt:  # the digit zoo's are class-conditional
            assert words == [trigger_phrase(lora.instance_prompt)]
        if arm == "none":
            assert HUB_INSTANCE_PROMPT not in hf_lora.extra and HUB_TRAINED_WORDS not in civitai.extra  # fmt: skip
    assert trigger_phrase("a sks emoji in the style of noto") == "sks emoji"
    assert trigger_phrase("an emoji in the style of sks") == "style of sks"


@pytest.mark.slow
def test_the_published_benchmark_runs_on_the_digit_zoo(small_zoo):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "published.py"), "--zoo", "digits"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "0 not ok" in done.stdout and done.stdout.count("0 not ok") == len(ARMS)
    last = done.stdout.strip().splitlines()[-1]
    found = re.fullmatch(r"A-ESR card=([\d.]+) discovered=([\d.]+) none=([\d.]+)", last)
    assert found, last
    # class-conditional digits: the prompt cannot change what is extracted, so the arms agree
    assert len(set(found.groups())) == 1 and float(found.group(1)) > 0
