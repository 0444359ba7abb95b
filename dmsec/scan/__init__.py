"""The scan: hub -> pull -> extract -> registry match -> authenticate -> Parquet findings.

The driver (`dmsec.scan.runner.run_scan`) lists refs, skips what the ledger holds, plans items,
hands them to an executor and commits parts, then the ledger. An executor (`dmsec.scan.
executors`, by name) runs the stages (`dmsec.scan.stages`: callable classes over `ScanItem`s)
over the items: `local` in this process, `ray` as Ray Data actor pools (`pipelines/scan.py`,
installed as `dmsec_pipelines.scan`). What stages find are typed records mirroring the result
tables (`dmsec.scan.hits`); the config (`dmsec.scan.config`) holds the library's own
`PullPolicy`, `ExtractConfig` and `CgiDmConfig`. The command: `dmsec scan` (`dmsec.scan.cli`).

    from dmsec.scan import load_scan_config, run_scan
    config = load_scan_config("configs/scan.yaml", ["results.out=/tmp/results"])
    print(run_scan(config).table())
"""

from dmsec.scan.config import ScanConfig, config_from_dict, load_scan_config
from dmsec.scan.records import ScanItem
from dmsec.scan.resolve import ResolvedScan, build_zoo_registry, resolve_scan
from dmsec.scan.runner import run_scan
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
