"""Checks of option combinations shared by several subcommands (no option may be ignored)."""

from __future__ import annotations

import argparse

__all__ = ["at_least", "given_source_options", "reject_source_options_without_source"]


def at_least(minimum: int):
    """An argparse ``type``: an integer >= ``minimum`` (argparse reports anything else)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def given_source_options(args: argparse.Namespace) -> list[str]:
    """The data-source options (``negrec.cli.data_cmd.add_source_arguments``) whose value in
    ``args`` is not their default, by flag (``--source`` itself included)."""
    from negrec.cli.data_cmd import add_source_arguments

    reference = argparse.ArgumentParser(add_help=False)
    add_source_arguments(reference, required=False)
    return ["--data" if action.dest == "source" else action.option_strings[0]
            for action in reference._actions
            if action.option_strings and getattr(args, action.dest, action.default) != action.default]


def reject_source_options_without_source(args: argparse.Namespace, command: str) -> None:
    """Data-source options are read only with ``--data``/``--source``: without it they would be
    ignored, so they are refused."""
    from negrec.cli import CLIError

    given = given_source_options(args)
    if given and args.source is None:
        raise CLIError(f"{', '.join(given)} describe{'s' if len(given) == 1 else ''} a data source "
                       f"but --data is not given: {command} would ignore "
                       f"{'it' if len(given) == 1 else 'them'} (add --data SOURCE)")
