"""Security verdicts on a checkpoint's files: what a trust-and-safety team wants as rows.

Two scanners report here:
- `picklescan` (ours, at pull time, only with `allow_pickle`): every pickle-format weights file is
  scanned statically before anything is unpickled; the globals it imports are compared with the
  allow-list of a plain tensor state dict (`dmsec.models.safe_load.PICKLE_ALLOWED_GLOBALS`). A
  file importing anything else (`os.system`, `builtins.exec`, ...) is "unsafe": the checkpoint is
  refused and the verdict names the globals. A clean file is "safe" (necessary, not sufficient:
  deny-list scanners have known bypasses; it is then loaded with `torch.load(weights_only=True)`).
- the hub's own scan, when the source reports one (Hugging Face's `model_info(securityStatus=True)`:
  `securityRepoStatus`, kept on the ref as `extra["hub_security"]`): one verdict per file the hub
  flagged, with the imports it lists.
Each verdict becomes a row of the `security` result table (`dmsec.results.schema`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from dmsec.errors import UnsafeCheckpointError
from dmsec.models.safe_load import PICKLE_ALLOWED_GLOBALS, scan_pickle

Verdict = Literal["safe", "unsafe", "error"]
HUB_SECURITY_KEY = "hub_security"  # CheckpointRef.extra key: the hub's scan, as JSON


@dataclass(frozen=True)
class SecurityVerdict:
    """One scanner's verdict on one file of a checkpoint."""

    file: str
    scanner: str
    scanner_version: str
    verdict: Verdict
    globals: tuple[str, ...] = ()  # "module.name" imports outside the allow-list (or flagged)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the `ScanItem.security` entries)."""
        row = asdict(self)
        row["globals"] = list(self.globals)
        return row


class UnsafePickleError(UnsafeCheckpointError):
    """A pickle imports globals outside the allow-list; carries the verdict for the results."""

    def __init__(self, verdict: SecurityVerdict) -> None:
        self.verdict = verdict
        names = ", ".join(verdict.globals) or "flagged by the scanner"
        super().__init__(verdict.file, f"pickle imports globals outside the allow-list: {names}")


def _picklescan_version() -> str:
    try:
        return version("picklescan")
    except PackageNotFoundError:
        return "unknown"


def judge_pickle(rel: str, local: str | Path, max_bytes: int) -> SecurityVerdict:
    """Scan the pickle at `local` (`rel`: its path within the checkpoint) without unpickling it.

    Returns the "safe" verdict; raises `UnsafePickleError` (with the "unsafe" verdict) when the
    file imports globals outside the allow-list, or the scanner could not parse it ("error").
    """
    scanner = ("picklescan", _picklescan_version())
    try:
        found = scan_pickle(local, max_bytes=max_bytes)
    except UnsafeCheckpointError as exc:
        bad = _forbidden_globals(local)
        verdict: Verdict = "unsafe" if bad or "allow-list" in exc.problem else "error"
        raise UnsafePickleError(SecurityVerdict(rel, *scanner, verdict, bad, exc.problem)) from None
    names = sorted({f"{m}.{n}" for m, n in found})
    return SecurityVerdict(rel, *scanner, "safe", (), f"imports only allow-listed globals: {', '.join(names)}")  # fmt: skip


def _forbidden_globals(local: str | Path) -> tuple[str, ...]:
    """The `module.name` globals of a pickle outside the allow-list (empty if unparseable)."""
    from picklescan.scanner import scan_file_path

    try:
        result = scan_file_path(str(local))
    except Exception:  # noqa: BLE001 - the scanner chokes on some malformed files
        return ()
    return tuple(sorted({f"{g.module}.{g.name}" for g in result.globals
                         if (g.module, g.name) not in PICKLE_ALLOWED_GLOBALS}))  # fmt: skip


def hub_verdicts(extra: dict[str, str], source: str) -> list[SecurityVerdict]:
    """Verdicts of the hub's own scan, from a ref's `extra["hub_security"]` (none if absent).

    Hugging Face's `securityRepoStatus` lists `filesWithIssues` ({path, level, pickleImportScan:
    {imports: [{module, name, safety}]}}); a repo the hub scanned with no issue gives one "safe"
    row for the repo (file "*").
    """
    raw = extra.get(HUB_SECURITY_KEY)
    if not raw:
        return []
    try:
        status = json.loads(raw)
    except ValueError:
        return [SecurityVerdict("*", f"{source}-hub", "", "error", (), "unreadable hub security status")]  # fmt: skip
    if not isinstance(status, dict):
        return []
    scanner = (f"{source}-hub", "")
    rows = []
    for entry in status.get("filesWithIssues") or []:
        if not isinstance(entry, dict):
            continue
        level = str(entry.get("level", ""))
        imports = (entry.get("pickleImportScan") or {}).get("imports") or []
        flagged = tuple(sorted({f"{i.get('module')}.{i.get('name')}" for i in imports
                                if isinstance(i, dict) and i.get("safety") not in (None, "innocuous")}))  # fmt: skip
        verdict: Verdict = "safe" if level == "safe" else "unsafe"
        rows.append(SecurityVerdict(str(entry.get("path", "*")), *scanner, verdict, flagged, f"hub level: {level or 'unknown'}"))  # fmt: skip
    if not rows and status.get("scansDone"):
        rows.append(SecurityVerdict("*", *scanner, "safe", (), "the hub scanned the repo and reported no issue"))  # fmt: skip
    return rows
