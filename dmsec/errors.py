"""Errors dmsec raises on bad input. Each names the file or field and the problem."""

from __future__ import annotations

from pathlib import Path


class DmsecError(Exception):
    """Base class of every error dmsec raises on purpose."""


class ConfigError(DmsecError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class CheckpointError(DmsecError):
    """A checkpoint file or folder cannot be used; the message names the path and why."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint was refused because loading it could run code (pickle) or exhaust memory."""
