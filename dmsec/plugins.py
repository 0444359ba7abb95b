"""Implementations by short name: the one registry helper behind every extension point.

Hub sources, embedders, protectors, extractors and verifiers each keep one `Registry`. A class
registers under its unique class attribute `name` (the key configs and the CLI select it by);
built-in ones may instead be listed as "module:Class" and are imported on first use (so the
`hf` source does not import boto3, nor the `pdq` embedder transformers). Lookups of unknown names
raise the registry's error naming the known ones.

    EXTRACTORS: Registry[Extractor] = Registry("extractor")

    @EXTRACTORS.register
    class FineXtract(Extractor):
        name = "finextract"

    EXTRACTORS.get("finextract")        # the class
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from dmsec.errors import ConfigError, DmsecError

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes of one kind by `name`; see the module docstring."""

    def __init__(
        self,
        kind: str,
        builtin: Mapping[str, str] | None = None,
        error: type[DmsecError] = ConfigError,
    ) -> None:
        """`kind` names the extension point in messages; `builtin`: name -> "module:Class",
        imported on first lookup; `error`: what bad names raise."""
        self.kind, self.error = kind, error
        self.builtin = dict(builtin or {})
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: make `cls` selectable by its `name` (unique within this registry)."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise self.error(f"{self.kind} {cls.__name__} needs a non-empty string `name`")
        holder = self._classes.get(name)
        qualified = f"{cls.__module__}:{cls.__qualname__}"
        builtin = self.builtin.get(name)
        if (holder is not None and holder is not cls) or (builtin and builtin != qualified):
            taken_by = holder.__qualname__ if holder is not None else builtin
            raise self.error(f"the {self.kind} name {name!r} is already registered by {taken_by}")
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        """Every known name, built-in or registered."""
        return sorted(set(self.builtin) | set(self._classes))

    def get(self, name: str) -> type[T]:
        """The class registered under `name`."""
        if name not in self._classes and name in self.builtin:
            module_name, attr = self.builtin[name].split(":")
            module = importlib.import_module(module_name)  # its decorator registers it
            self._classes.setdefault(name, getattr(module, attr))
        if name not in self._classes:
            raise self.error(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._classes[name]

    def classes(self) -> list[type[T]]:
        """The registered classes (built-ins only once imported)."""
        return list(self._classes.values())


class LazyTable(Mapping[str, T]):
    """Named objects (not classes: presets, similarity spaces) registered by the package that
    owns their data; `providers` maps a name to the module that registers it, imported on first
    lookup, so a lower floor can name a higher floor's entries without importing it."""

    def __init__(self, kind: str, providers: Mapping[str, str] | None = None) -> None:
        """`kind` names the table in messages; `providers`: name -> module registering it."""
        self.kind = kind
        self.providers = dict(providers or {})
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Make `item` known as `name` (re-registering the same object is allowed)."""
        if name in self._items and self._items[name] is not item:
            raise ConfigError(f"the {self.kind} name {name!r} is already registered")
        self._items[name] = item
        return item

    def __getitem__(self, name: str) -> T:
        if name not in self._items and name in self.providers:
            importlib.import_module(self.providers[name])  # registers it
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self)}")
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self.providers) | set(self._items)))

    def __len__(self) -> int:
        return len(set(self.providers) | set(self._items))
