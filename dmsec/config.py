"""Configs from YAML: frozen dataclasses built from mappings, checked against their annotations.

The one loader for every config dmsec reads from a file or a command line (the scan, protection
jobs, SPOT): keys are the dataclass fields (unknown keys are errors naming the dotted key), values
are checked against the annotations (scalars, Optional, unions, Literal, tuples, nested
dataclasses) and each dataclass validates itself on construction, with messages naming the field.
A mapping is applied over a *default*: a class (its own field defaults), or an instance, so a
section keeps the defaults its owner chose (the scan's `extract` starts from the scan's
`ExtractConfig`, not the library's) and changes only the keys given. A field whose metadata has
`presets` (a function of a name) also takes a preset's name, e.g. `extract.defaults: paper`.

    config = load_config(ScanConfig, "configs/scan.yaml", ["extract.n_samples=64"])

`--set key=value` overrides are parsed as YAML scalars (`extract.seed=1`, `source.kinds=[lora]`,
`registry.location=null`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, overload

import yaml

from dmsec.errors import ConfigError

T = TypeVar("T")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in YAML file `path` (empty file: {}); errors name the file."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: must hold a mapping; got {type(loaded).__name__}")
    return loaded or {}


@overload
def from_mapping(default: type[T], data: Any, where: str = "") -> T: ...
@overload
def from_mapping(default: T, data: Any, where: str = "") -> T: ...
def from_mapping(default: Any, data: Any, where: str = "") -> Any:
    """`default` (a dataclass or an instance of one) with the keys of `data` applied; `where` is
    the dotted prefix that messages name (e.g. "extract.")."""
    cls = default if isinstance(default, type) else type(default)
    label = where.rstrip(".") or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"`{label}` must be a mapping; got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key `{where}{unknown[0]}` (known in `{label}`: {sorted(fields)})")  # fmt: skip
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        presets = fields[name].metadata.get("presets")
        if presets is not None and isinstance(value, str):
            try:
                value = presets(value)
            except ConfigError as exc:
                raise _qualified(exc, where, [name]) from None
        base = getattr(default, name) if not isinstance(default, type) else _field_default(fields[name])  # fmt: skip
        values[name] = coerce(hints[name], value, f"{where}{name}", base)
    if isinstance(default, type):
        missing = sorted(n for n, f in fields.items() if n not in values and _required(f))
        if missing:
            raise ConfigError(f"`{where}{missing[0]}` is required (in `{label}`)")
    try:
        return default(**values) if isinstance(default, type) else dataclasses.replace(default, **values)  # fmt: skip
    except ConfigError as exc:  # a section's own check names its field: name it with the section
        raise _qualified(exc, where, list(fields)) from None


def coerce(tp: Any, value: Any, name: str, default: Any = None) -> Any:
    """`value` checked against annotation `tp`; a nested dataclass is built over `default`."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        base = default if isinstance(default, tp) else tp
        return from_mapping(base, {} if value is None else value, f"{name}.")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own message, which names the bad item
            return coerce(options[0], value, name, default)
        for arg in options:
            try:
                return coerce(arg, value, name, default)
            except ConfigError:
                continue
        raise ConfigError(f"`{name}` must be {_describe(tp)}; got {value!r}")
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"`{name}` must be one of {list(typing.get_args(tp))}; got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"`{name}` must be a list; got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"`{name}` must have {len(args)} items; got {value!r}")
        return tuple(coerce(a, v, f"{name}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))  # fmt: skip
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise ConfigError(f"`{name}` must be {_describe(tp)}; got {value!r}")


def to_mapping(config: Any) -> Any:
    """A config as plain YAML-able data (nested dicts, tuples as lists); `from_mapping`'s inverse."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_mapping(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {k: to_mapping(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [to_mapping(v) for v in config]
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """ "a.b=value" -> (["a", "b"], YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"`--set` expects key=value (e.g. extract.n_samples=64); got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"`--set {key}`: value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key=value` overrides to a nested mapping (a copy); unknown keys fail in validation."""
    out: dict[str, Any] = to_mapping(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"`--set {'.'.join(path)}`: `{part}` is not a section")
            node = child
        node[path[-1]] = value
    return out


@overload
def load_config(default: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T: ...  # fmt: skip
@overload
def load_config(default: T, path: str | Path | None = None, overrides: list[str] | None = None) -> T: ...  # fmt: skip
def load_config(default: Any, path: str | Path | None = None, overrides: list[str] | None = None) -> Any:  # fmt: skip
    """`default` with the YAML file `path` (if any), then the `key=value` `overrides`, applied."""
    data = read_yaml(path) if path is not None else {}
    return from_mapping(default, apply_overrides(data, list(overrides or [])))


def config_to_yaml(config: Any) -> str:
    """YAML text of a config (or of plain data such as a resolved config)."""
    return yaml.safe_dump(to_mapping(config), sort_keys=False, default_flow_style=False)


def _qualified(exc: ConfigError, where: str, names: list[str]) -> ConfigError:
    """`exc` with the first field of `names` it names in backticks given its dotted prefix."""
    message = str(exc)
    named = [n for n in names if f"`{n}`" in message]
    if not where or not named:
        return exc
    return ConfigError(message.replace(f"`{named[0]}`", f"`{where}{named[0]}`", 1))


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
