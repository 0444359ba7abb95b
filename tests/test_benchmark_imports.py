"""Every name a benchmark imports from the library exists: benchmarks import inside functions
(so a plain import of the script proves nothing) and run for minutes, so a renamed or removed
library function would otherwise surface only when someone runs the measurement."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).parent.parent / "benchmarks").glob("*.py"))


def _library_imports(path: Path) -> list[tuple[str, str, int]]:
    """(module, name, line) of every `from dmsec... import name` anywhere in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("dmsec", "dmsec_pipelines"):  # fmt: skip
            out += [(node.module, alias.name, node.lineno) for alias in node.names]
    return out


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_library_name_a_benchmark_imports_exists(path):
    imports = _library_imports(path)
    missing = []
    for module, name, line in imports:
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{path.name}:{line}: {module}.{name}")
    assert not missing, missing


def test_the_check_sees_imports_inside_functions(tmp_path):
    script = tmp_path / "b.py"
    script.write_text("def f():\n    from dmsec.scan.resolve import no_such_function\n")
    assert _library_imports(script) == [("dmsec.scan.resolve", "no_such_function", 2)]
    assert not hasattr(importlib.import_module("dmsec.scan.resolve"), "no_such_function")
