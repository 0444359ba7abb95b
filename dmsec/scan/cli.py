"""`dmsec scan`: scan a hub for checkpoints that leak protected artwork.

    dmsec scan [TARGET] [--config configs/scan.yaml] [--source URI] [--registry LOC] [--out DIR]
               [--set k=v] [--summary-json PATH] [--fail-on new-findings] [--fail-on errors]
               [--log-format text|json] [--dry-run]

With no options it runs the embedded default: the small tiny zoo as a local hub, a registry of
its protected images (built in `<out>/registry` if missing), local Ray, results in ./results; it
prints a line per checkpoint, the summary table (new findings first) and where the report is;
`--log-format json` prints one JSON object per line instead (`dmsec.scan.logs`). TARGET scans one
checkpoint alone instead of listing a hub: `hf://org/repo[@rev]`, `civitai://models/<id>[@<version>]`,
`s3://bucket/key` or a local file or folder (`dmsec.hub.target`). `--dry-run` prints what would be
listed, pulled and scanned (base model, files) and stops there: nothing pulled, no results written.

Exit status, for schedulers (CronJobs): 0 when the scan ran; 1 when it could not run (config,
source, results location: the message says what to fix); 2 for a usage error; and, only when
asked with `--fail-on`, 3 when there are new findings not dismissed, 4 when a checkpoint ended in
an error, 5 for both. The summary JSON is written before the exit either way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dmsec.errors import DmsecError
from dmsec.scan.logs import scan_log
from dmsec.scan.summary import FAIL_ON


@click.command()
@click.argument("target", required=False)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Scan config YAML (default: the embedded default, see configs/scan.yaml).")  # fmt: skip
@click.option("--source", default=None, help="Hub to scan (sets source.uri): a path, hf://, civitai://, s3://, zoo:small.")  # fmt: skip
@click.option("--registry", default=None, help="Protected-artwork registry folder (sets registry.location).")  # fmt: skip
@click.option("--out", default=None, help="Results folder (sets results.out).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set extract.n_samples=64 (repeatable).")  # fmt: skip
@click.option("--local", is_flag=True, help="Run the stages in this process instead of on Ray.")
@click.option("--summary-json", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the summary (counts, new findings, errors, durations, where the results are) here as JSON.")  # fmt: skip
@click.option("--fail-on", "fail_on", multiple=True, type=click.Choice(sorted(FAIL_ON)),
              help="Exit 3 on new findings not dismissed, 4 on checkpoint errors (5: both); repeatable.")  # fmt: skip
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="stdout as lines for people, or one JSON object per line (scan id, checkpoint, stage, status, seconds) for log shippers.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print what would be listed, pulled and scanned; pull, extract and record nothing.")  # fmt: skip
def scan(target: str | None, config_path: str | None, source: str | None, registry: str | None,
         out: str | None, overrides: tuple[str, ...], local: bool, summary_json: str | None,
         fail_on: tuple[str, ...], log_format: str, dry_run: bool) -> None:  # fmt: skip
    """Scan a hub (or one TARGET checkpoint) for leaks of protected artwork; write Parquet findings."""
    from dmsec.hub.target import parse_target
    from dmsec.scan.config import load_scan_config
    from dmsec.scan.runner import run_scan

    if target is not None and source is not None:
        raise click.UsageError("give a TARGET or --source, not both (a TARGET names its source)")
    sets = list(overrides)
    for key, value in (("source.uri", source), ("registry.location", registry), ("results.out", out)):  # fmt: skip
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    if local:
        sets.append("run.executor=local")
    try:
        if target is not None:
            one = parse_target(target)
            sets += [f"source.uri={json.dumps(one.source_uri)}", f"source.target={json.dumps(one.repo_id)}",
                     f"source.revision={json.dumps(one.revision)}"]  # fmt: skip
        config = load_scan_config(config_path, sets)
        if dry_run:
            from dmsec.scan.dry_run import dry_run as plan_only

            plan_only(config, echo=click.echo)
            return
        summary = run_scan(config, echo=click.echo, log_format=log_format)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    scan_log(log_format, summary.scan_id, click.echo).summary(summary)
    if summary_json:
        Path(summary_json).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(summary_json).expanduser().write_text(summary.to_json())
    code = summary.exit_code(fail_on)
    if code:
        why = {3: "new findings to triage", 4: "checkpoint errors", 5: "new findings and checkpoint errors"}[code]  # fmt: skip
        click.echo(f"exit {code} (--fail-on {' '.join(fail_on)}): {why}; see the summary above", err=True)  # fmt: skip
        sys.exit(code)
