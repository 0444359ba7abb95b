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


class StorageError(DmsecError):
    """A file or object under a storage location (a folder or s3://) cannot be reached or written."""


class ImageDecodeError(DmsecError, ValueError):
    """An image could not be used: unknown format, too many pixels, truncated or unreadable.

    `source` names the file (or ``input[<i>]`` for in-memory images) and `reason` says why.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")
