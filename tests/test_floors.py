"""constraints-floors.txt pins exactly the floors pyproject.toml declares (what
scripts/check_floors.sh installs to run the hub tests at the oldest versions we claim to support)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _floors(requirements: list[str]) -> dict[str, str]:
    found = {}
    for req in requirements:
        match = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)", req)
        assert match, f"pyproject.toml: {req!r} has no floor (>=)"
        found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_floors_file_pins_every_dependency_at_its_pyproject_floor():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _floors(project["dependencies"])
    wanted.pop("torch")  # constraints.txt's CPU pin: an older torch is a multi-GB CUDA wheel
    pinned = {}
    for line in (ROOT / "constraints-floors.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[name.strip().lower().replace("_", "-")] = version.strip()
    assert pinned == wanted
    script = (ROOT / "scripts" / "check_floors.sh").read_text()
    assert "-c constraints-floors.txt" in script and "tests/hub" in script
