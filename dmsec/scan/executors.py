"""Choosing the executor a scan runs its stages with: Ray (`pipelines/scan.py`) or in-process.

`dmsec/` never imports Ray. The Ray executor lives in `pipelines/scan.py`, found beside the
`dmsec` package (a source checkout or editable install) or under `$DMSEC_PIPELINES`, and loaded
from its path only when a scan asks for it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from dmsec.errors import ConfigError
from dmsec.scan.config import ScanConfig
from dmsec.scan.runner import Executor

PIPELINES_ENV = "DMSEC_PIPELINES"


def pipelines_dir() -> Path:
    """`$DMSEC_PIPELINES`, else the `pipelines/` folder beside the `dmsec` package."""
    env = os.environ.get(PIPELINES_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "pipelines"


def ray_executor() -> Executor:
    """`pipelines/scan.py`'s `ray_executor`, loaded from its file."""
    path = pipelines_dir() / "scan.py"
    if not path.is_file():
        raise ConfigError(
            f"`run.executor` ray needs {path} (set ${PIPELINES_ENV} to the pipelines folder), "
            "or use `--set run.executor=local`"
        )
    spec = importlib.util.spec_from_file_location("dmsec_pipelines_scan", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    executor: Executor = module.ray_executor
    return executor


def executor_for(config: ScanConfig) -> Executor:
    """The executor `config.run.executor` names."""
    if config.run.executor == "local":
        from dmsec.scan.local import local_executor

        return local_executor
    return ray_executor()
