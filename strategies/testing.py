"""A contract test kit any exit plugin can run: ``check_exit_plugin(MyExit)``.

It trades the plugin on the shared rule-based signals over real-like bars (the bundled synthetic
data unless ``bars`` is given), through the real engine, and checks:

1. the contract (``API_VERSION``, ``Params``, ``plan``/``on_bar``);
2. no exception on any bar;
3. determinism: two runs give identical trades;
4. causality: no decision at bar k changes when bars after k exist (``engine.lookahead``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bars import Bars
from engine.bootstrap import Registries, build_engine
from engine.config import RunConfig
from engine.datafile import load_bars
from engine.exits import check_exit_contract
from engine.lookahead import check_lookahead
from engine.registry import EXIT_STRATEGIES, Registry

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "SYNTH-BTCUSDT_15m_data.csv"


@dataclass
class KitReport:
    name: str
    trades: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = f"{self.name}: {self.trades} trades; "
        return head + ("all checks passed" if self.ok else "; ".join(self.problems))


def kit_config(name: str, params: dict[str, Any] | None = None,
               signals: dict[str, Any] | None = None, legacy_needs: bool = False) -> RunConfig:
    """The kit's run: the plugin on the shared rule signals. The features it reads come from its
    own ``required_features`` (so a plugin that forgets to declare one fails the kit); only a
    plugin of API 1.0 declaring ``NEEDS_HANDLERS`` gets the volume profile configured for it."""
    features = [{"id": "vp", "kind": "volume_profile"}] if legacy_needs else []
    return RunConfig.model_validate({
        "name": f"kit-{name}",
        "data": {"file": str(BUNDLED)},
        "features": features,
        "signals": {"kind": "signals", "params": signals or {"mode": "rules"}},
        "strategies": [{"name": name, "kind": name, "params": params or {}}],
    })


def check_exit_plugin(cls: type, params: dict[str, Any] | None = None, *,
                      bars: Bars | None = None, n_bars: int = 4000,
                      name: str = "plugin_under_test") -> KitReport:
    """Run the kit on ``cls`` (installed or not) and return what it found."""
    report = KitReport(name)
    try:
        check_exit_contract(name, cls)
    except Exception as exc:
        report.problems.append(f"contract: {exc}")
        return report
    reg = Registries()
    exits = {n: reg.exits.load(n) for n in reg.exits.names()}
    reg.exits = Registry.from_mapping(EXIT_STRATEGIES, {**exits, name: cls})
    feed_cls = reg.feeds.load("csv")
    data = bars if bars is not None else load_bars(BUNDLED)
    data = data.slice(0, min(n_bars, len(data)))
    cfg = kit_config(name, params, legacy_needs=bool(getattr(cls, "NEEDS_HANDLERS", ())))

    def build(c: RunConfig, b: Bars) -> Any:
        return build_engine(c, reg, feed=feed_cls.from_bars(b))

    runs = []
    for _ in range(2):
        try:
            eng = build(cfg, data)
            eng.run()
        except Exception as exc:
            report.problems.append(f"raised {type(exc).__name__}: {exc}")
            return report
        runs.append(list(eng.accounts[name].trades))
    report.trades = len(runs[0])
    if runs[0] != runs[1]:
        report.problems.append("not deterministic: two runs on the same bars traded differently")
    look = check_lookahead(cfg, data, build)
    for v in look.verdicts.values():
        if not v.ok:
            report.problems.append(f"lookahead in {v.component}: {v.detail}")
    return report
