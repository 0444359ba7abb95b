"""The scan: hub -> pull -> FineXtract -> registry match -> CGI-DM -> Parquet findings.

Stages (callable classes over `ScanItem`s, the same in Ray Data, the local executor and tests):
`PullStage`, `ExtractStage`, `MatchStage`, `AuthenticateStage`. The driver (`run_scan`) plans
from the hub and the ledger, runs an executor and commits results, then the ledger. Config:
`dmsec.scan.config` (YAML, `--set` overrides); Ray wiring: `pipelines/scan.py`.

    from dmsec.scan import load_scan_config, run_scan
    from dmsec.scan.executors import executor_for
    config = load_scan_config("configs/scan.yaml", ["results.out=/tmp/results"])
    print(run_scan(config, executor_for(config)).table())
"""

from dmsec.scan.config import ScanConfig, config_from_dict, load_scan_config
from dmsec.scan.records import ScanItem
from dmsec.scan.runner import run_scan
from dmsec.scan.setup import ResolvedScan, build_zoo_registry, resolve_scan
from dmsec.scan.summary import ScanSummary

__all__ = [
    "ResolvedScan",
    "ScanConfig",
    "ScanItem",
    "ScanSummary",
    "build_zoo_registry",
    "config_from_dict",
    "load_scan_config",
    "resolve_scan",
    "run_scan",
]
