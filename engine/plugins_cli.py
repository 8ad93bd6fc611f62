"""``tradebot strategies list`` and ``tradebot new-strategy NAME``: for plugin authors."""

from __future__ import annotations

import argparse
import re
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

from engine.errors import ConfigError, PluginLoadError
from engine.exits import API_VERSION, api_version, check_exit_contract
from engine.registry import ENTRY_RULES, EXIT_STRATEGIES, FEATURE_HANDLERS, Registry

STRATEGY_GROUPS = (EXIT_STRATEGIES, ENTRY_RULES)  # one namespace: a config's strategies[].kind


def register_list(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("strategies", help="list installed strategies and plugins")
    ssub = p.add_subparsers(dest="strategies_command", metavar="ACTION")
    ssub.required = True
    lst = ssub.add_parser("list", help="name, module, exit-plugin API version, package "
                                          "and status (or import error) of every plugin")
    lst.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    bad = 0
    for group, word in ((EXIT_STRATEGIES, "exit"), (ENTRY_RULES, "entry"),
                        (FEATURE_HANDLERS, "feature")):
        conflicts = Registry.installed(group).conflicts
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            version = ep.dist.version if ep.dist is not None else "?"
            dist = ep.dist.name if ep.dist is not None else "?"
            # the exit-plugin API version the plugin declares ("-": not an exit plugin,
            # "?": it did not load)
            api = "-" if group != EXIT_STRATEGIES else "?"
            try:
                if ep.name in conflicts:
                    raise PluginLoadError(
                        f"{ep.name!r} is installed by more than one distribution: "
                        + " and ".join(conflicts[ep.name]) + "; uninstall all but one")
                obj = ep.load()
                if group == EXIT_STRATEGIES:
                    v = api_version(getattr(obj, "API_VERSION", None))
                    api = f"{v[0]}.{v[1]}" if v is not None else "?"
                    check_exit_contract(ep.name, obj)
                status = "ok"
            except PluginLoadError as exc:
                status, bad = f"error: {exc}", bad + 1
            except Exception as exc:  # the plugin boundary: show the real cause
                status, bad = f"error: {type(exc).__name__}: {exc}", bad + 1
            rows.append((word, ep.name, ep.value, api, f"{dist} {version}", status))
    head = ("kind", "name", "target", "api", "package")
    widths = [max([len(head[i])] + [len(r[i]) for r in rows]) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  status")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
    return 1 if bad else 0


def register_new(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("new-strategy", help="create an installable exit-strategy plugin package")
    p.add_argument("name", help="snake_case name, e.g. my_exit")
    p.add_argument("--dir", type=Path, default=Path(), help="where to create the package")
    p.set_defaults(func=cmd_new)


def cmd_new(args: argparse.Namespace) -> int:
    name = args.name
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"strategy name {name!r} must be snake_case (letters, digits, _)")
    cls = "".join(part.title() for part in name.split("_"))
    pkg = f"tradebot_{name}"
    root = args.dir / f"tradebot-{name.replace('_', '-')}"  # = the distribution name
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another name or --dir")
    for group in STRATEGY_GROUPS:
        taken = [ep for ep in entry_points(group=group) if ep.name == name]
        if taken:
            dist = taken[0].dist.name if taken[0].dist is not None else "?"
            raise ConfigError(
                f"strategy name {name!r} is taken: the installed distribution {dist} has "
                f"{'an exit strategy' if group == EXIT_STRATEGIES else 'an entry rule'} of that "
                f"name ({taken[0].value}); choose another name (`tradebot strategies list` "
                "shows the installed ones)")
    files = {
        "pyproject.toml": _PYPROJECT,
        "setup.cfg": _SETUP_CFG,
        f"{pkg}/__init__.py": '"""{name} exit strategy for tradebot."""\n',
        f"{pkg}/strategy.py": _MODULE,
        "tests/test_strategy.py": _TEST,
        "README.md": _README,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).format(
            name=name, cls=cls, pkg=pkg, dist=name.replace("_", "-"),
            api_major=API_VERSION[0], api_minor=API_VERSION[1]))
    print(f"created {root}/ with exit strategy {name!r} ({pkg}.strategy:{cls})")
    print(f"next: pip install -e {root}   then   tradebot strategies list")
    return 0


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"
"""

_SETUP_CFG = """\
[metadata]
name = tradebot-{dist}
version = 0.1.0
description = The {name} exit strategy for tradebot

[options]
packages = {pkg}
install_requires =
    ai-trading-bot

[options.entry_points]
tradebot.exit_strategies =
    {name} = {pkg}.strategy:{cls}
"""

_MODULE = '''\
"""{cls}: an example exit strategy. Edit the rules; keep the contract.

An exit plugin decides, the engine executes: ``plan`` sets the initial stop and partial targets,
``on_bar`` returns intents on each closed bar. No I/O, no clock, no orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from strategies.api import (
    BarClosed,
    ExitContext,
    ExitIntent,
    ExitPlan,
    FeatureConfig,
    MoveStop,
    PluginParams,
    PositionView,
    TakePartial,
    TradeSetup,
)


class {cls}Params(PluginParams):
    target_pct: float = Field(default=3.0, gt=0, description="partial target, % from entry")
    partial_frac: float = Field(default=0.5, gt=0, le=1)
    trail_pct: float = Field(default=2.0, gt=0, description="trail distance behind the close")
    max_hold_bars: int = Field(default=672, ge=1)


class {cls}:
    # the plugin API it was written for: loads on {api_major}.{api_minor} or a later {api_major}.x
    API_VERSION: ClassVar[tuple[int, int]] = ({api_major}, {api_minor})
    Params = {cls}Params

    @staticmethod
    def required_features(p: {cls}Params) -> list[FeatureConfig]:
        # what it reads, set up by the engine: e.g. [VOLUME_PROFILE] for window(ctx, ...), or
        # FeatureConfig(id="atr_14", kind="atr", params={{"n": 14}}) read via ctx.features
        return []

    def __init__(self, params: {cls}Params) -> None:
        self.p = params

    def plan(self, setup: TradeSetup, ctx: ExitContext) -> ExitPlan:
        sign = 1 if setup.side == "long" else -1
        target = setup.entry_price * (1 + sign * self.p.target_pct / 100)
        return ExitPlan(stop_price=setup.stop_price,
                        partials=(TakePartial(self.p.partial_frac, target, "TARGET"),),
                        max_hold_bars=self.p.max_hold_bars)

    def on_bar(self, pos: PositionView, bar: BarClosed, ctx: ExitContext) -> Sequence[ExitIntent]:
        if pos.partials_filled < 1:
            return ()
        trail = bar.close * (1 - pos.sign * self.p.trail_pct / 100)
        if pos.sign * (trail - pos.stop_price) > 0:
            return (MoveStop(trail, "TRAIL_STOP"),)
        return ()
'''

_TEST = '''\
from strategies.api import check_exit_contract, check_exit_plugin
from {pkg}.strategy import {cls}


def test_contract():
    check_exit_contract("{name}", {cls})


def test_contract_kit():
    # causality, no exceptions on real-like data, determinism
    report = check_exit_plugin({cls})
    assert report.ok, report.summary()
'''

_README = """\
# tradebot-{name}

An exit strategy plugin for tradebot. Install it beside tradebot (`pip install -e .`), check it
with `tradebot strategies list`, and use it in a config:

```yaml
signals: {{kind: signals, params: {{mode: rules}}}}
strategies:
  - {{name: mine, kind: {name}, params: {{target_pct: 3}}}}
```

`pytest` runs the contract kit (causality, determinism, no exceptions).
"""
