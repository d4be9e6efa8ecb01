"""Typed run configs: a dataclass per command, a JSON file, and command-line overrides.

Each config field carries a docstring (the string literal right below it, as in cleanrl);
``field_docs`` reads them so ``--help`` shows them. Precedence: defaults < ``--config`` file <
flags given on the command line.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from trainer.data import DataError

ConfigT = TypeVar("ConfigT")


def field_docs(cls: type) -> dict[str, str]:
    """Map field name -> the docstring written under it in the class body."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, following in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for ``X | None`` annotations."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def _coerce(name: str, annotation: Any, value: Any, where: str) -> Any:
    kind, optional = _base_type(annotation)
    if optional and isinstance(value, str) and value.lower() in ("none", "null"):
        return None
    if value is None:
        if optional:
            return None
        raise DataError(f"{where}: field {name!r} may not be null")
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if origin is list:
            (item_type,) = typing.get_args(kind)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            return [item_type(v) for v in value]
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: field {name!r} expects {getattr(kind, '__name__', kind)}, got {value!r}"
        ) from None


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    parser.add_argument("--config", type=Path, help="JSON file with config fields (flags win)")
    for field in dataclasses.fields(cls):
        kind, _ = _base_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else None
        if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = field.default_factory()  # type: ignore[misc]
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{docs.get(field.name, '')} (default: {default!r})".replace("%", "%%")
        if kind is bool:
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(flag, dest=field.name, default=argparse.SUPPRESS, help=help_text)


def build_config(cls: type[ConfigT], args: argparse.Namespace) -> ConfigT:
    """Defaults, then the ``--config`` JSON file, then explicit flags."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    config_path = getattr(args, "config", None)
    if config_path is not None:
        values.update(load_config_file(config_path, cls))
    for name in names:
        if name in vars(args):
            values[name] = _coerce(name, hints[name], getattr(args, name), "command line")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise DataError(f"missing required setting(s): {flags} (flag or --config file)")
    return cls(**values)


def load_config_file(path: Path, cls: type) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: config file not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object of config fields")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise DataError(f"{path}: unknown config field(s) {unknown}; known: {sorted(names)}")
    return {k: _coerce(k, hints[k], v, str(path)) for k, v in raw.items()}


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
