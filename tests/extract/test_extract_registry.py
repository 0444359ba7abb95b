"""Extractors and presets by name: lazy tables, and no import from extract/ or metrics to a zoo."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dmsec.extract as ex
from dmsec.errors import ConfigError
from dmsec.metrics import SPACES

ROOT = Path(__file__).resolve().parents[2]


def test_extractors_are_a_lazy_module_class_table_with_one_module_per_method():
    assert ex.EXTRACTORS.builtin == {
        "finextract": "dmsec.extract.finextract:FineXtract",
        "baseline": "dmsec.extract.direct:DirectSampling",
    }
    assert ex.EXTRACTORS.get("finextract") is ex.FineXtract
    assert ex.EXTRACTORS.get("baseline") is ex.DirectSampling
    with pytest.raises(ConfigError, match="unknown extractor 'nope'; known: baseline, finextract"):
        ex.EXTRACTORS.get("nope")


def test_presets_come_from_the_zoos_registration():
    assert list(ex.GUIDANCE_PRESETS) == ["art", "paper", "zoo"]
    assert ex.guidance_preset("paper") == (("full", 3.0, -0.02), ("lora", 5.0, 0.0))
    from dmsec.zoo.art_config import ART_GUIDANCE
    from dmsec.zoo.config import ZOO_GUIDANCE

    assert {k: (w, kk) for k, w, kk in ex.guidance_preset("zoo")} == ZOO_GUIDANCE
    assert {k: (w, kk) for k, w, kk in ex.guidance_preset("art")} == ART_GUIDANCE
    assert ex.GUIDANCE_PRESETS["art"].chosen_on.startswith("the art zoo's tuning split")
    with pytest.raises(ConfigError, match="preset \\(art, paper, zoo\\)"):
        ex.guidance_preset("sdxl")
    assert SPACES["zoo"].name == "zoo" and SPACES["art"].name == "art"


def test_importing_extract_and_metrics_imports_no_zoo_module():
    code = (
        "import sys, dmsec.extract, dmsec.metrics;"
        "print(sorted(m for m in sys.modules if m.startswith('dmsec.zoo')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_extract_and_metrics_have_no_import_statement_of_a_zoo():
    offenders = []
    for path in [*(ROOT / "dmsec" / "extract").glob("*.py"), ROOT / "dmsec" / "metrics.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}:{node.lineno}" for n in names if n.startswith("dmsec.zoo")]
    assert not offenders, offenders
