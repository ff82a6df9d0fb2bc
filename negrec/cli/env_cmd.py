"""``negrec env``: the environment and the extension's build."""

from __future__ import annotations

import argparse

DESCRIPTION = "Print torch, CUDA, the extension's build options and which kernels are compiled in."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from negrec.env import main

    return main(["--json"] if args.json else [])
