"""The ``negrec`` command line (also ``python -m negrec``).

Each subcommand lives in its own module under :mod:`negrec.cli` and registers itself in
:data:`SUBCOMMANDS`; expected failures (bad paths, configs, arguments) print one clear line
and exit with status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module path; each module defines add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = {
    "env": ("negrec.cli.env_cmd", "print torch, CUDA and how negrec's extension was built"),
    "data": ("negrec.cli.data_cmd", "inspect event logs (negrec data stats ...)"),
    "train": ("negrec.cli.train_cmd", "train and evaluate a model (checkpoints, metrics.json)"),
    "evaluate": ("negrec.cli.evaluate_cmd", "offline metrics of a checkpoint"),
    "recommend": ("negrec.cli.recommend_cmd", "top-K items for a history"),
    "responsiveness": ("negrec.cli.responsiveness_cmd",
                       "counterfactual responsiveness and closed-loop rates of checkpoints"),
    "demo": ("negrec.cli.demo_cmd", "the main job: simulate, train four objectives, report"),
}


class CLIError(Exception):
    """An expected, user-facing failure: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="negrec",
        description="Train sequential recommenders that learn from negative feedback and "
                    "measure how quickly they respond to it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=getattr(mod, "DESCRIPTION", help_text),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (CLIError, FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError,
            KeyError) as exc:
        from negrec.cli.data_cmd import cli_message  # data errors name flags, not keywords

        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else cli_message(exc)
        print(f"negrec {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"negrec {args.command}: interrupted", file=sys.stderr)
        return 130
