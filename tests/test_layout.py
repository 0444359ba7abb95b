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


def test_library_reaches_pipelines_only_through_the_ray_job_table():
    """`dmsec/` imports no `pipelines` module, names `dmsec_pipelines` only in its Ray job table
    (dmsec/jobs.py), and loads no code by file path or `sys.path`; the table's modules exist."""
    import ast

    from dmsec.jobs import RAY_JOBS

    table = ROOT / "dmsec" / "jobs.py"
    offenders = []
    for path in (ROOT / "dmsec").rglob("*.py"):
        tree = ast.parse(path.read_text())
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] in ("pipelines", "dmsec_pipelines") for n in names):
                offenders.append(f"{where}:{node.lineno} imports {names}")
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and "dmsec_pipelines" in text and "`" not in text and path != table:  # fmt: skip
                offenders.append(f"{where}:{node.lineno} names {text!r}")
            if isinstance(node, ast.Attribute) and node.attr in ("spec_from_file_location", "path"):
                base = node.value
                if node.attr == "spec_from_file_location" or (isinstance(base, ast.Name) and base.id == "sys"):  # fmt: skip
                    offenders.append(f"{where}:{node.lineno} loads code by path ({ast.unparse(node)})")  # fmt: skip
    assert not offenders, offenders
    assert set(RAY_JOBS.values()) == {f"dmsec_pipelines.{p.stem}" for p in (ROOT / "pipelines").glob("*.py") if p.stem != "__init__"}  # fmt: skip
    setup = (ROOT / "setup.py").read_text()
    assert '"dmsec_pipelines"' in setup and 'package_dir={"dmsec_pipelines": "pipelines"}' in setup
