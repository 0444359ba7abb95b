"""Project-wide rules that are cheap to check: the architecture rule, the README commands, CI."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_library_never_imports_ray():
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in (ROOT / "dmsec").rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.match(r"\s*(import ray|from ray)\b", line)
    ]
    assert not offenders, f"dmsec/ must not import ray (keep Ray in pipelines/): {offenders}"


def test_readme_opens_with_demo_and_test_commands_and_ci_runs_the_test_one():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].startswith("make demo") and block[1].startswith("make test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


def test_test_module_names_are_unique():
    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1], (
        "pytest's default import mode needs unique test file names"
    )


def test_torch_is_pinned_for_install():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
    assert "-c constraints.txt torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_ray_cluster_yaml_is_a_launcher_config_installing_like_the_readme():
    import yaml

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type"):
        assert key in config, key
    assert config["head_node_type"] in config["available_node_types"]
    assert any(t.get("resources", {}).get("GPU") for t in config["available_node_types"].values())
    # the README's two steps, in order (tests/cluster checks the details)
    pips = [c for c in config["setup_commands"] if "pip install" in c]
    assert len(pips) == 2 and "-c constraints.txt torch==2.13.0" in pips[0], pips
    assert "-c constraints.txt '.[" in pips[1], pips
