"""The ``negrec`` command line (also ``python -m negrec``).

Each subcommand lives in its own module under :mod:`negrec.cli` and registers itself in
:data:`SUBCOMMANDS`. Errors caused by the user's input (:class:`~negrec.errors.UserError`,
a data file's DataFormatError, and OSError: a missing file, a full disk) print one line and
exit with status 2; ``negrec --debug ...`` shows their traceback instead. Any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

__all__ = ["CLIError", "SUBCOMMANDS", "build_parser", "main"]

from negrec.cli.options import CLIError
from negrec.errors import UserError
from negrec.threads import configured as thread_policy

# name -> module path; each module defines add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = {
    "env": ("negrec.cli.env_cmd", "print torch, CUDA and how negrec's extension was built"),
    "data": ("negrec.cli.data_cmd", "inspect event logs (negrec data stats ...)"),
    "config": ("negrec.cli.config_cmd", "every configuration key, its default and meaning"),
    "train": ("negrec.cli.train_cmd", "train and evaluate a model (checkpoints, metrics.json)"),
    "tune": ("negrec.cli.tune_cmd", "choose the dislike weight on validation events (trains several)"),
    "evaluate": ("negrec.cli.evaluate_cmd", "offline metrics of a checkpoint"),
    "recommend": ("negrec.cli.recommend_cmd", "top-K items for a history"),
    "responsiveness": ("negrec.cli.responsiveness_cmd",
                       "counterfactual responsiveness and closed-loop rates of checkpoints"),
    "demo": ("negrec.cli.demo_cmd", "the main job: simulate, train four objectives, report"),
}

THREADS_HELP = ("torch intra-op threads: N, auto (default: the CPUs available to the process, "
                "affinity and cgroup quota) or off (torch's own setting, no OpenMP wait policy); "
                "default from NEGREC_THREADS, then OMP_NUM_THREADS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="negrec",
        description="Train sequential recommenders that learn from negative feedback and "
                    "measure how quickly they respond to it.",
    )
    from negrec import __version__

    parser.add_argument("--version", action="version", version=f"negrec {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error caused by the input, not one line")
    parser.add_argument("--threads", metavar="N|auto|off", help=THREADS_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=getattr(mod, "DESCRIPTION", help_text),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.add_argument("--threads", metavar="N|auto|off", default=argparse.SUPPRESS,
                       help=THREADS_HELP)  # also accepted after the subcommand
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_progress_log()
    try:
        # the thread policy (negrec/threads.py, docs/performance.md): threads from the CPUs
        # available, adapted to the load while the command runs. Run as the program (no argv:
        # the console script, python -m negrec) the policy stays; called from a program (argv
        # given), the caller's thread count is restored afterwards.
        with thread_policy(args.threads, owns_process=argv is None):
            return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"negrec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug or not is_user_error(exc):
            raise
        print(f"negrec {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2


class _AroundBars(logging.Handler):
    """Writes log lines to stderr without breaking a tqdm bar that is being drawn there."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never fail the command
            self.handleError(record)


def show_progress_log() -> None:
    """The command line shows the library's INFO lines (stages, per-epoch validation figures,
    heartbeats; :mod:`negrec.progress`) on stderr, prefixed ``negrec:``; set once per process."""
    logger = logging.getLogger("negrec")
    if any(isinstance(h, _AroundBars) for h in logger.handlers):
        return
    handler = _AroundBars()
    handler.setFormatter(logging.Formatter("negrec: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def is_user_error(exc: BaseException) -> bool:
    """Caused by the input or the environment, not by a bug: a UserError, a data file's
    DataFormatError, or an OSError (missing file, permissions, full disk)."""
    from negrec.data.loaders import DataFormatError

    return isinstance(exc, (UserError, DataFormatError, OSError))


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line; an OSError's with the file it concerns."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
    else:
        from negrec.cli.data_cmd import cli_message  # data errors name flags, not keywords

        text = cli_message(exc)
    return " ".join(text.split())
