"""The ``seglosses`` command line.

Each sub-command lives beside the code it drives; this module only dispatches. A command entry
is ``(name, module, help)``; the module defines ``configure_<name>(parser)`` and
``run_<name>(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    ("bench", "seglosses.bench.cli", "run the Loss Odyssey benchmark (default: quick preset on built-in tasks)"),
    ("report", "seglosses.bench.cli", "(re)write report.html and report.md from an OUT folder"),
    ("rank", "seglosses.ranking_cli", "significance ranking of a per-case results CSV"),
    ("export", "seglosses.bench.cli", "export an OUT folder's results as tidy CSV"),
    ("losses", "seglosses.registry", "print the loss catalogue"),
    ("tasks", "seglosses.bench.cli", "list the built-in synthetic tasks, or save previews"),
    ("recommend", "seglosses.recommend", "which loss for this dataset: profile, shortlist with reasons, optional confirmation"),
    ("info", "seglosses._native", "versions, threads, and whether the compiled CPU kernels are in use"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglosses",
        description="Segmentation losses, metrics, ranking and the Loss Odyssey benchmark.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n  seglosses bench\n  seglosses losses 'dice*'\n  seglosses rank OUT/results.csv --plot rank.png",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        try:
            mod = importlib.import_module(module)
            configure = getattr(mod, f"configure_{name}")
        except (ImportError, AttributeError):
            continue  # command not available in this build
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=argparse.RawDescriptionHelpFormatter)
        configure(p)
        p.set_defaults(_run=getattr(mod, f"run_{name}"))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"seglosses {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
