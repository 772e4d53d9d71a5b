"""The `xfer-nb` command. Each subcommand is a thin wrapper over one package function;
imports are lazy so `xfer-nb --help` and `xfer-nb data` start fast."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xfer-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="list every task's splits, languages and sizes, or show examples")
    p.add_argument("task", nargs="?")
    p.add_argument("language", nargs="?")
    p.add_argument("split", nargs="?")
    p.add_argument("-n", "--num-examples", type=int, default=3)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--source", default="local", choices=["local", "hub"])

    args = parser.parse_args(argv)
    try:
        if args.command == "data":
            from xfer_nb import data
            return data.cli_data(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"xfer-nb {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
