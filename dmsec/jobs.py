"""The Ray jobs, by name: the one way the library reaches `pipelines/`.

`pipelines/` is the only code that imports Ray. It ships with dmsec as the package
`dmsec_pipelines` (`setup.py` maps the folder to that name, which no other distribution's
top-level package takes), so `pip install dmsec` from a wheel carries it and `dmsec scan` finds
its Ray executor anywhere. Commands import a job only when they are asked to run on Ray, so
`dmsec` itself stays importable without starting Ray; `tests/test_layout.py` checks that no other
module of `dmsec/` names `dmsec_pipelines`, and that nothing loads code by file path.

    executor = ray_job("scan").ray_executor        # what `dmsec scan` runs its stages with
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dmsec.errors import ConfigError

#: job name -> module of `dmsec_pipelines` (the folder `pipelines/`)
RAY_JOBS: dict[str, str] = {
    "scan": "dmsec_pipelines.scan",
    "protect": "dmsec_pipelines.protect",
    "finetune": "dmsec_pipelines.finetune",
    "spot_tune": "dmsec_pipelines.spot_tune",
}


def ray_job(name: str) -> ModuleType:
    """The module of Ray job `name` (one of `RAY_JOBS`), imported on first use."""
    if name not in RAY_JOBS:
        raise ConfigError(f"unknown Ray job {name!r}; known: {sorted(RAY_JOBS)}")
    module = RAY_JOBS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name not in ("dmsec_pipelines", module):
            raise
        raise ConfigError(
            f"the Ray job {name!r} ({module}) is not installed: reinstall dmsec "
            "(`pip install .` installs `pipelines/` as `dmsec_pipelines`)"
        ) from None
