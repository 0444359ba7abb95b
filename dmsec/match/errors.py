"""Errors the matching layer raises: bad images, unusable embedders, inconsistent registries."""

from __future__ import annotations

from dmsec.errors import DmsecError


class MatchError(DmsecError):
    """Base class of the errors raised by `dmsec.match`."""


class ImageDecodeError(MatchError, ValueError):
    """An image could not be used: unknown format, too many pixels, truncated or unreadable.

    `source` names the file (or ``input[<i>]`` for in-memory images) and `reason` says why.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class EmbedderError(MatchError):
    """An embedder is unknown, misconfigured, or its model files do not match the registry."""


class RegistryError(MatchError):
    """A protected-artwork registry is missing, malformed, or its files disagree with each other."""
