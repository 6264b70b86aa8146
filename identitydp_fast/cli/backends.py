"""``identitydp backends``: list the backends usable on this machine."""
from __future__ import annotations

import argparse

from .._backends import backends


def cmd_backends(args: argparse.Namespace) -> int:
    for name in backends():
        print(name)
    return 0


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the subcommand on the ``identitydp`` subparsers."""
    bk = sub.add_parser("backends", help="list the backends usable on this machine")
    bk.set_defaults(func=cmd_backends)
    return bk
