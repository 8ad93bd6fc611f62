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

# = engine.registry.COMMANDS (not imported: engine.registry imports importlib.metadata, which
# alone costs more than the rest of `tradebot --help`)
COMMANDS = "tradebot.commands"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _dist_key(folder: str) -> str:
    """Normalised distribution name of a ``NAME-VERSION.dist-info`` / ``.egg-info`` folder."""
    import re

    stem = folder.rsplit(".", 1)[0]
    return re.sub(r"[-_.]+", "_", stem.split("-", 1)[0]).lower()


def command_entry_points() -> dict[str, str]:
    """``{command: "module:function"}`` of the ``tradebot.commands`` entry points.

    Read straight from the ``entry_points.txt`` of each installed distribution on ``sys.path``
    (the first distribution of a name wins, as in ``importlib.metadata``), because importing
    ``importlib.metadata`` alone costs more than the rest of ``tradebot --help``.
    """
    import configparser
    import sys
    from pathlib import Path

    found: dict[str, str] = {}
    seen: set[str] = set()
    for entry in sys.path:
        base = Path(entry or ".")
        try:
            names = sorted(p.name for p in base.iterdir()
                           if p.name.endswith((".dist-info", ".egg-info")))
        except OSError:  # a zip file, a missing folder
            continue
        for name in names:
            key = _dist_key(name)
            if key in seen:
                continue
            seen.add(key)
            try:
                text = (base / name / "entry_points.txt").read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if f"[{COMMANDS}]" not in text:  # most distributions: no need to parse
                continue
            ini = configparser.ConfigParser(delimiters=("=",), interpolation=None)
            ini.optionxform = str  # type: ignore[assignment,method-assign]
            try:
                ini.read_string(text)
            except configparser.Error:
                continue
            if ini.has_section(COMMANDS):
                for cmd, value in ini.items(COMMANDS):
                    found.setdefault(cmd.strip(), value.strip())
    return dict(sorted(found.items()))


def _load_register(name: str, value: str) -> Any:
    """The ``register`` function of one command (its module imported now).

    Raises:
        PluginLoadError: the module or the function cannot be loaded (with the real cause).
    """
    import importlib

    from engine.errors import PluginLoadError

    module, _, attr = value.partition(":")
    try:
        obj: Any = importlib.import_module(module.strip())
        for part in attr.strip().split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # the plugin boundary: re-raise with the real cause
        raise PluginLoadError(
            f"command {name!r} ({value}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    return obj


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
    chosen = _command_word(list(sys.argv[1:] if argv is None else argv))
    for name, value in command_entry_points().items():
        if name == chosen:
            _load_register(name, value)(sub)
        else:
            sub.add_parser(name, help=static_help(value), add_help=False)
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
