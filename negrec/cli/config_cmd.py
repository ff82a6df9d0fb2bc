"""``negrec config``: every configuration key ``--set`` accepts, with its default and meaning."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import re
import tokenize
import typing
from functools import lru_cache

DESCRIPTION = """List every key of the training configuration (what `negrec train --set KEY=VALUE`
and a --config YAML file accept), its default and what it means. The meaning is the one
declared with the field in the code: its help text, the comment on its line (or the comment
block above it).

examples:
  negrec config                 # every key
  negrec config loss            # the keys under loss.
  negrec config --yaml > my.yaml  # the defaults as a configuration file to edit"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prefix", nargs="?", default="",
                   help="show only the keys starting with this (e.g. loss, model.dim)")
    p.add_argument("--yaml", action="store_true", help="print the defaults as YAML")


def _source_lines(cls: type) -> list[str]:
    try:
        return inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return []


@lru_cache(maxsize=None)
def _comments(cls: type) -> dict[str, str]:
    """Field name -> its comment in ``cls``'s source: the comment on the field's line, else
    the contiguous comment lines right above it (a section heading counts for its first field
    only)."""
    lines = _source_lines(cls)
    trailing: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if tok.type == tokenize.COMMENT:
                trailing[tok.start[0] - 1] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = re.match(r"\s+(\w+)\s*:", line)
        if not m or m.group(1) not in names or m.group(1) in out:
            continue
        if i in trailing and not line.lstrip().startswith("#"):
            out[m.group(1)] = trailing[i]
            continue
        above, j = [], i - 1
        while j >= 0 and lines[j].lstrip().startswith("#"):
            above.insert(0, lines[j].lstrip().lstrip("#").strip())
            j -= 1
        if above:
            out[m.group(1)] = " ".join(above)
    return out


def describe(root: type | None = None, prefix: str = "") -> list[tuple[str, object, str]]:
    """``(dotted key, default, meaning)`` of every leaf key below the dataclass ``root``
    (default :class:`~negrec.train.config.TrainConfig`), in declaration order."""
    from negrec.cli.flags import _default
    from negrec.train.config import TrainConfig

    root = root or TrainConfig
    hints = typing.get_type_hints(root)
    rows = []
    for f in dataclasses.fields(root):
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            rows += describe(hint, key + ".")
            continue
        meaning = f.metadata.get("help") or _comments(root).get(f.name) or ""
        rows.append((key, _default(f), meaning))
    return rows


def run(args: argparse.Namespace) -> int:
    from negrec.cli.options import CLIError

    rows = [r for r in describe() if r[0].startswith(args.prefix)]
    if not rows:
        raise CLIError(f"no configuration key starts with {args.prefix!r} (`negrec config` "
                       "lists them all)")
    if args.yaml:
        import yaml

        from negrec.train.config import TrainConfig

        tree = dataclasses.asdict(TrainConfig())
        print(yaml.safe_dump(_json_ready(tree), sort_keys=False), end="")
        return 0
    width = max(len(k) for k, _, _ in rows)
    dwidth = min(24, max(len(repr(d)) for _, d, _ in rows))
    for key, default, meaning in rows:
        print(f"{key:<{width}}  {_show(default):<{dwidth}}  {meaning}")
    return 0


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if not isinstance(value, tuple) else str(list(value))


def _json_ready(value):
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value
