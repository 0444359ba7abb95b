"""Fixtures for scan tests: the zoo registry (built once per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # scan_helpers


@pytest.fixture(scope="session")
def zoo_registry(small_zoo, tmp_path_factory) -> Path:
    """A registry of the small zoo's protected training images (embedder "zoo")."""
    from dmsec.scan import build_zoo_registry

    location = tmp_path_factory.mktemp("registry") / "registry"
    build_zoo_registry(small_zoo.root, location)
    return location
