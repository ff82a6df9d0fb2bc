"""Command-line flags generated from the configuration dataclasses, so that each option is
declared once: its name, type, default and help text are the dataclass field's (help in
``field(metadata={"help": ...})``); a :class:`Flag` only says which field a command exposes and,
where the command line spells it differently, how.

Why a small helper over :func:`dataclasses.fields` rather than jsonargparse or tyro:
docs/contributing.md ("Command-line flags").
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

__all__ = ["Flag", "add_flags", "flag_values", "given_flags"]

_FIELD_DEFAULT = object()  # a Flag holds its field's default when not given


@dataclass(frozen=True)
class Flag:
    """One flag for the field at dotted path ``key`` below a root dataclass (``"model.kind"``).

    ``names``: its option strings (default ``--`` + the field name with ``-`` for ``_``);
    ``dest``: the argparse attribute (default the field name); ``negate``: a boolean field
    set to false by the flag (``--no-progress``); ``default``: what the flag holds when not
    given, where that is not the field's default (e.g. ``None``: "not given" must be seen). The allowed values are the field's
    ``metadata["choices"]`` (a sequence, or a function returning one: a registry's names)."""

    key: str
    names: tuple[str, ...] = ()
    dest: str | None = None
    negate: bool = False
    default: Any = _FIELD_DEFAULT  # what the flag holds when not given, if not the field's

    @property
    def attr(self) -> str:
        return self.dest or self.key.rsplit(".", 1)[-1]

    @property
    def option_strings(self) -> tuple[str, ...]:
        return self.names or ("--" + self.key.rsplit(".", 1)[-1].replace("_", "-"),)


def field_of(root: type, key: str) -> tuple[dataclasses.Field, Any]:
    """The dataclass field at dotted ``key`` below ``root`` and its resolved type."""
    cls = root
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            raise KeyError(f"{root.__name__} has no field {'.'.join(parts[:i + 1])}")
        hint = typing.get_type_hints(cls)[part]
        if i + 1 < len(parts):
            cls = hint
    return fields[part], hint


def _unset(flag: Flag, f: dataclasses.Field, defaults: bool) -> Any:
    """What ``flag`` holds when it is not given."""
    if flag.negate:
        return False
    if flag.default is not _FIELD_DEFAULT:
        return flag.default
    return _default(f) if defaults else None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _plain(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, root: type,
              flags: Iterable[Flag], *, defaults: bool, required: Sequence[str] = ()) -> None:
    """Adds ``flags`` to ``parser``. With ``defaults`` a flag not given holds its field's
    default (a complete description, e.g. a data source); without, ``None`` (an override of a
    configuration that exists already). ``required``: keys whose flag must be given."""
    for flag in flags:
        f, hint = field_of(root, flag.key)
        hint = _plain(hint)
        help_text = f.metadata.get("help")
        if flag.negate and help_text:
            help_text = f"do not {help_text}"
        kwargs: dict[str, Any] = {"dest": flag.attr, "help": help_text}
        kwargs["default"] = _unset(flag, f, defaults)
        if hint is bool:
            kwargs["action"] = "store_true"
        else:
            choices = f.metadata.get("choices")
            choices = choices() if callable(choices) else choices
            kwargs["type"] = hint if hint in (int, float) else str
            if choices:
                kwargs["choices"] = list(choices)
            if flag.key in required:
                kwargs["required"] = True
        parser.add_argument(*flag.option_strings, **kwargs)


def flag_values(args: argparse.Namespace, flags: Iterable[Flag]) -> dict[str, Any]:
    """``{dotted key: value}`` of ``flags`` as parsed (a negated flag as the field's value)."""
    out = {}
    for flag in flags:
        value = getattr(args, flag.attr)
        out[flag.key] = (not value) if flag.negate else value
    return out


def given_flags(args: argparse.Namespace, root: type, flags: Iterable[Flag], *,
                defaults: bool) -> list[tuple[Flag, Any]]:
    """The flags whose parsed value is not what they hold when not given (their field's
    default with ``defaults``, else ``None`` / false), with that value."""
    out = []
    for flag in flags:
        value = getattr(args, flag.attr, None)
        if value != _unset(flag, field_of(root, flag.key)[0], defaults):
            out.append((flag, value))
    return out
