"""Run configs from a JSON file and command-line flags, checked against the contract.

The config dataclasses, and the bounds of every field, are in trainer/contract.py; a
hand-written ``--config`` file gets the same checks as a round's config on the web side
(unknown fields, types, bounds, registered scorers), only paths are the operator's to give.
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

from trainer.contract import ConfigError, DataError, check_settings

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
    """Defaults, then the ``--config`` JSON file, then explicit flags; checked against the
    contract (trainer/contract.py): unknown fields, types, bounds and scorer names."""
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
    where = f"{config_path} and the command line" if config_path else "command line"
    try:
        checked = check_settings(cls, values, path="", from_round=False)
    except ConfigError as exc:
        raise ConfigError(exc.problems, where) from None
    return cls(**checked)


def load_config_file(path: Path, cls: type) -> dict[str, Any]:
    """The settings of a hand-written ``--config`` JSON file, checked as a round's are (JSON
    types as they are: ``"total_steps": "7"`` is refused), except that paths are allowed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: config file not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    try:
        return check_settings(cls, raw, path="", from_round=False, partial=True)
    except ConfigError as exc:
        raise ConfigError(exc.problems, str(path)) from None


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def reference_markdown(commands: dict[str, type]) -> str:
    """The configuration reference of docs/trainer.md: one table per command, generated from
    the contract (tests/trainer/test_config.py keeps the page equal to it)."""
    parts = []
    for name, cls in commands.items():
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        rows = [
            f"#### `{name}` ({cls.__name__})",
            "",
            "| flag | type | default | allowed | meaning |",
            "|---|---|---|---|---|",
        ]
        for spec in dataclasses.fields(cls):
            kind, optional = _base_type(hints[spec.name])
            type_name = (
                f"list of {typing.get_args(kind)[0].__name__}"
                if typing.get_origin(kind) is list
                else kind.__name__
            )
            if spec.default is not dataclasses.MISSING:
                default = repr(spec.default)
            elif spec.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = repr(spec.default_factory())  # type: ignore[misc]
            else:
                default = "required"
            flag = "--" + spec.name.replace("_", "-")
            shown_type = f"{type_name} or None" if optional else type_name
            meaning = docs.get(spec.name, "").replace("|", "\\|")
            rows.append(f"| `{flag}` | {shown_type} | {default} | {_allowed(spec)} | {meaning} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"


def _allowed(spec: dataclasses.Field) -> str:
    """What the contract allows, and who sets it in a round."""
    meta = spec.metadata
    words = []
    if "bounds" in meta:
        ge, gt, le, lt = meta["bounds"]
        low = f"≥ {_number(ge)}" if ge is not None else f"> {_number(gt)}" if gt is not None else ""
        high = (
            f"≤ {_number(le)}" if le is not None else f"< {_number(lt)}" if lt is not None else ""
        )
        words.append(", ".join(w for w in (low, high) if w))
    if "choices" in meta:
        words.append(" / ".join(meta["choices"]))
    if "subset_of" in meta:
        words.append("some of " + " / ".join(meta["subset_of"]))
    if "item_bounds" in meta:
        low, high = meta["item_bounds"]
        words.append(f"≤ {meta['max_numbers']} numbers, each ≥ {_number(low)}, ≤ {_number(high)}")
    if "max_items" in meta:
        words.append(f"≤ {meta['max_items']} plain names")
    if meta.get("scorer"):
        words.append("a registered scorer")
    if meta.get("server"):
        words.append("server-set in a round")
    return "; ".join(w for w in words if w) or "any"


def _number(value: float) -> str:
    if value == 2**63 - 1:
        return "2^63-1"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"
