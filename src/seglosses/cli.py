"""The ``seglosses`` command line.

Each sub-command lives beside the code it drives; this module only dispatches. A command entry
is ``(name, module, help)``; the module defines ``configure_<name>(parser)`` and
``run_<name>(args) -> int``.

A command whose module fails to import is not dropped: it stays listed (marked unavailable, with
the module and the exception), and running it exits with status 2 and that error. A module that
imports but lacks ``configure_<name>`` / ``run_<name>`` is a programming error and raises.
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
    ("nnunet", "seglosses.integrations.nnunet_cli", "install / uninstall the nnU-Net v2 trainer that trains with any seglosses loss"),
    ("info", "seglosses._native", "versions, threads, and whether the compiled CPU kernels are in use"),
]


class CommandUnavailable(RuntimeError):
    """A sub-command whose module failed to import."""


def _unavailable(name: str, module: str, exc: BaseException):
    def run(args):
        raise CommandUnavailable(
            f"command {name!r} is unavailable: importing {module} failed with {type(exc).__name__}: {exc}"
        )

    return run


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
        except ImportError as exc:  # listed and reported, not dropped
            why = f"unavailable: importing {module} failed with {type(exc).__name__}: {exc}"
            # no option prefix: whatever follows the command is taken as is, and the error is the import's
            p = sub.add_parser(
                name, help=f"{help_text} [{why}]", description=f"{help_text}\n\n{why}", prefix_chars="\0", add_help=False
            )
            p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
            p.set_defaults(_run=_unavailable(name, module, exc))
            continue
        configure = getattr(mod, f"configure_{name}", None)
        run = getattr(mod, f"run_{name}", None)
        missing = [f for f, v in ((f"configure_{name}", configure), (f"run_{name}", run)) if v is None]
        if missing:
            raise AttributeError(
                f"command {name!r}: module {module} must define configure_{name}(parser) and "
                f"run_{name}(args); missing {', '.join(missing)}"
            )
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=argparse.RawDescriptionHelpFormatter)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, CommandUnavailable) as exc:
        print(f"seglosses {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
