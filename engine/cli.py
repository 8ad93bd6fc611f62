"""The ``tradebot`` command line.

Core commands live here. Layers above ``engine/`` contribute sub-commands through the
``tradebot.commands`` entry-point group: each entry point is a function
``register(subparsers) -> None`` that adds one sub-parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code). That keeps ``engine/`` free of upward
imports while ``tradebot indicators`` and ``tradebot data synth`` still appear in one CLI.

Start-up is lazy, so that ``tradebot --help`` and every command start fast whatever the other
commands import:

- only the module of the command being run is imported (``tradebot run ...`` never imports
  torch for ``train``); its ``register`` builds the real sub-parser, so ``tradebot CMD --help``
  is exactly what the command defines;
- the other commands appear as named placeholders whose one-line help is read from the source
  of their ``register`` function (the ``help=`` string of its ``add_parser`` call, else the
  function's docstring) without importing it: ``tradebot --help`` imports no command module;
- a command module should still keep its top level light (no torch, numba, pandas, dash at
  import time) so that its own ``--help`` is fast: import inside the command function.

Ctrl-C at any moment, imports included, prints ``interrupted`` and exits 130; an ``EngineError``
prints ``error: ...`` and exits 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any

from engine.errors import EngineError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _command_entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    from engine.registry import COMMANDS

    return {ep.name: ep for ep in sorted(entry_points(group=COMMANDS), key=lambda e: e.name)}


def _source_file(module: str) -> str | None:
    """The source file of ``module`` found without importing it (nor its parent packages)."""
    import importlib.util
    from pathlib import Path

    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return spec.origin
    locations = [Path(p) for p in spec.submodule_search_locations or ()]
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        found = None
        for loc in locations:
            pkg = loc / part
            if (pkg / "__init__.py").is_file():
                found = pkg
                break
            if last and pkg.with_name(part + ".py").is_file():
                return str(pkg.with_name(part + ".py"))
        if found is None:
            return None
        if last:
            return str(found / "__init__.py")
        locations = [found]
    return None


@functools.lru_cache(maxsize=64)
def _parsed(path: str) -> Any:
    import ast
    from pathlib import Path

    try:
        return ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None


def static_help(value: str) -> str:
    """One-line help of the command whose ``register`` is ``value`` (``module:function``), read
    from its source: the ``help=`` string of the function's ``add_parser`` call, else the first
    line of its docstring, else ``""``. Nothing is imported."""
    import ast

    module, _, attr = value.partition(":")
    path = _source_file(module.strip())
    if path is None or not attr:
        return ""
    tree = _parsed(path)
    if tree is None:
        return ""
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
               and n.name == attr.strip()), None)
    if fn is None:
        return ""
    for node in ast.walk(fn):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_parser"):
            for kw in node.keywords:
                if kw.arg == "help":
                    try:
                        text = ast.literal_eval(kw.value)
                    except ValueError:
                        continue
                    if isinstance(text, str):
                        return text
            break
    doc = ast.get_docstring(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _command_word(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv``: the first word that is not an option (the top-level
    options, ``-v`` and ``-h``, take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> Any:
    """The ``tradebot`` parser. Only the command named in ``argv`` (if any) is imported and
    registered for real; the others are placeholders with their static help."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="tradebot",
        description="Event-driven crypto trading engine: backtest, paper and live from one loop.",
        epilog="`tradebot COMMAND --help` shows a command's options.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    eps = _command_entry_points()
    chosen = _command_word(list(sys.argv[1:] if argv is None else argv))
    for name, ep in eps.items():
        if name == chosen:
            from engine.registry import COMMANDS, Registry

            register = Registry(COMMANDS, {name: ep}).load(name)
            register(sub)
        else:
            sub.add_parser(name, help=static_help(ep.value), add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        import logging

        logging.basicConfig(
            level=logging.WARNING - 10 * min(args.verbose, 2),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return int(args.func(args) or 0)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
