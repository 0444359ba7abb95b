"""Errors the matching layer raises: bad images, unusable embedders, inconsistent registries."""

from __future__ import annotations

from dmsec.errors import DmsecError


class MatchError(DmsecError):
    """Base class of the errors raised by `dmsec.match`."""


class EmbedderError(MatchError):
    """An embedder is unknown, misconfigured, or its model files do not match the registry."""


class RegistryError(MatchError):
    """A protected-artwork registry is missing, malformed, or its files disagree with each other."""
