"""The ``aquasurf`` command line.

Each subcommand is implemented next to the concept it belongs to; this module only builds the
argument parser and dispatches, importing the implementation lazily so that ``aquasurf --help``
stays fast.

    aquasurf space count SCHEMA... [--operators paper|coatnet] [--json]
    aquasurf space build SCHEMA... [--operators ...] [--out DIR]
    aquasurf reproduce --profile smoke|paper [--only 01 02 ...]
    aquasurf fim --arch NAME --fn NAME [--device cpu|cuda] [--json]
    aquasurf bench build --arch cnn|resnet|vit [--seeds 0 1 2] [--workers 2] [--limit N]
    aquasurf bench status --arch cnn|resnet|vit
"""

from __future__ import annotations

import argparse
import importlib
import sys


def _handler(target: str):
    module, func = target.split(":")

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), func)(args) or 0

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aquasurf",
        description="AQuaSurF: activation-function search with a Fisher/outputs surrogate.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    space = commands.add_parser("space", help="the PANGAEA search space")
    space_commands = space.add_subparsers(dest="space_command", required=True)
    for name, target, summary in [
        ("count", "aquasurf_core.space_store:cli_count", "count functions and unique functions"),
        ("build", "aquasurf_core.space_store:cli_build", "evaluate, deduplicate and persist"),
    ]:
        sub = space_commands.add_parser(name, help=summary)
        sub.add_argument("schemas", nargs="+", metavar="SCHEMA",
                         help="e.g. 'binary(unary(x),unary(x))'")
        sub.add_argument("--operators", default="paper", choices=["paper", "coatnet"],
                         help="operator set (default: paper)")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "build":
            sub.add_argument("--out", default=None, help="output directory (default: cache)")
        sub.set_defaults(func=_handler(target))

    reproduce = commands.add_parser("reproduce", help="run the papermill pipeline")
    reproduce.add_argument("--profile", default="paper", choices=["smoke", "paper"])
    reproduce.add_argument("--only", nargs="*", default=None,
                           help="notebook numbers or names to run (default: all)")
    reproduce.add_argument("--output-root", default=None,
                           help="write papermill_runs/ and figures/ under this directory")
    reproduce.set_defaults(func=_handler("aquasurf_core.pipeline:cli_reproduce"))

    fim = commands.add_parser("fim", help="K-FAC Fisher eigenvalue features of one function")
    fim.add_argument("--arch", required=True, help="architecture name (see aquasurf_core.models)")
    fim.add_argument("--fn", required=True, help="activation function name")
    fim.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    fim.add_argument("--batch-size", type=int, default=None)
    fim.add_argument("--seed", type=int, default=0)
    fim.add_argument("--json", action="store_true")
    fim.set_defaults(func=_handler("aquasurf_core.fim_features:cli_fim"))

    from aquasurf_core.bench_build import add_parser as add_bench_parser

    add_bench_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
