"""The `dmsec` command line.

Each capability owns its sub-command in its own module (``dmsec/<capability>/cli.py``); this file
only lists them and loads one lazily when it is invoked, so `dmsec --help` stays fast and a missing
optional extra breaks only the command that needs it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

import click

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "zoo": "dmsec.zoo.cli:zoo",
    "extract": "dmsec.extract.cli:extract",
    "index": "dmsec.match.cli:index",
    "hub": "dmsec.hub.cli:hub",
    "scan": "dmsec.scan.cli:scan",
    "query": "dmsec.results.cli:query",
    "report": "dmsec.results.cli:report",
    "triage": "dmsec.results.cli:triage",
    "authenticate": "dmsec.authenticate.cli:authenticate",
    "protect": "dmsec.protect.cli:protect",
    "finetune": "dmsec.finetune.cli:finetune",
    "spot": "dmsec.causal.cli:spot",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in COMMANDS.items() if _module_exists(target))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


def _module_exists(target: str) -> bool:
    module_name = target.split(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="dmsec")
def main(verbose: int) -> None:
    """dmsec: find fine-tuned diffusion checkpoints that leak protected artwork."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    main()
