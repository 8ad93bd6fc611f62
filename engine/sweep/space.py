"""The sweep file and its search space: parsed, expanded and validated before anything runs.

A sweep file is a run config (``base: configs/default.yaml`` and/or inline ``run:`` keys merged
over it) plus a ``space`` of parameter paths::

    signals.params.stop_atr_mult:                     {values: [3.5, 4.5]}
    strategies[trailing_stop].params.trail_buffer_pct: {low: 0.5, high: 2.0, step: 0.5}
    features[vp].params.lookback:                     {values: [150, 200]}
    account.position_size_frac:                       [0.25, 0.5]
    data.file:                                        [a_15m_data.csv, b_1h_data.csv]

A **candidate** is the run config with one of the base config's strategies and one value for
every path that applies to it (``strategies[NAME]...`` paths apply to strategy NAME only; every
other path to all). Each candidate is validated by the same pydantic models a run uses (the core
``RunConfig`` and each plugin's ``Params``), so an unknown key, a bad value or a range end outside
a parameter's bounds is refused up front with its key path.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.config import RunConfig, read_yaml, validate_config
from engine.errors import ConfigError

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Dim(BaseModel):
    """One swept path: explicit ``values``, or a range ``low``..``high`` (``step`` for a grid
    and for stepped sampling, ``n`` grid points on a ``log`` or continuous range)."""

    model_config = _STRICT
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0)
    n: int | None = Field(default=None, ge=2, le=1000)
    log: bool = False
    int_: bool | None = Field(default=None, alias="int",
                              description="integer parameter (default: low/high/step are ints)")

    @model_validator(mode="after")
    def _shape(self) -> Dim:
        if self.values is not None:
            if self.low is not None or self.high is not None or self.step or self.n:
                raise ValueError("give either values or low/high, not both")
            if not self.values:
                raise ValueError("values is empty; list at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give values: [...] or both low and high")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}; swap them")
        if self.log and self.low <= 0:
            raise ValueError(f"log range needs low > 0, got {self.low}")
        if self.step is not None and self.n is not None:
            raise ValueError("give step or n, not both")
        return self

    @property
    def is_int(self) -> bool:
        if self.int_ is not None:
            return self.int_
        nums = [x for x in (self.low, self.high, self.step) if x is not None]
        return all(float(x).is_integer() for x in nums) and (
            self.step is not None or (self.n is None and not self.log))

    def grid(self, where: str) -> list[Any]:
        """Every grid value (in order)."""
        if self.values is not None:
            return list(self.values)
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.step is not None:
            k = int(math.floor((hi - lo) / self.step + 1e-9))
            pts = [lo + i * self.step for i in range(k + 1)]
        elif self.n is not None:
            if self.log:
                pts = [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (self.n - 1))
                       for i in range(self.n)]
            else:
                pts = [lo + i * (hi - lo) / (self.n - 1) for i in range(self.n)]
        elif self.is_int:
            pts = [float(x) for x in range(int(lo), int(hi) + 1)]
        else:
            raise ConfigError(
                f"space.{where}: a continuous range {lo}..{hi} has no grid; add step: or n: "
                "(or use search.method random/tpe)")
        return [int(round(p)) if self.is_int else round(p, 12) for p in pts]

    def ends(self) -> list[Any]:
        """The values validated up front for random/TPE sampling (each end, every choice)."""
        if self.values is not None:
            return list(self.values)
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        return [int(round(lo)), int(round(hi))] if self.is_int else [lo, hi]

    def sample(self, rng: Any) -> Any:
        if self.values is not None:
            return self.values[int(rng.integers(len(self.values)))]
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.step is not None:
            k = int(math.floor((hi - lo) / self.step + 1e-9))
            v = lo + int(rng.integers(k + 1)) * self.step
        elif self.log:
            v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        else:
            v = rng.uniform(lo, hi)
        return int(round(v)) if self.is_int else round(float(v), 12)

    def suggest(self, trial: Any, name: str) -> Any:
        """The Optuna distribution of this dimension."""
        if self.values is not None:
            return trial.suggest_categorical(name, self.values)
        if self.is_int:
            return trial.suggest_int(name, int(self.low), int(self.high),  # type: ignore[arg-type]
                                     step=int(self.step or 1), log=self.log and not self.step)
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        return trial.suggest_float(name, lo, hi, step=self.step,
                                   log=self.log and self.step is None)


class SearchConfig(BaseModel):
    model_config = _STRICT
    method: Literal["grid", "random", "tpe"] = "grid"
    n_trials: int = Field(default=50, ge=1, description="random/tpe: candidates per optimisation")
    seed: int = 0
    prune: bool = Field(default=True, description="tpe: stop hopeless trials after a first "
                        "stage on the first part of the bars (MedianPruner)")
    prune_stage_frac: float = Field(default=0.4, gt=0.05, lt=1.0)
    batch: int = Field(default=0, ge=0, description="tpe: trials asked per round "
                       "(0 = 2 per worker)")


class ObjectiveConfig(BaseModel):
    model_config = _STRICT
    metric: Literal["sharpe", "return", "profit_factor", "penalised_return"] = "sharpe"
    min_trades: int = Field(default=1, ge=0, description="fewer trades: the candidate is "
                            "not eligible")
    max_drawdown_pct: float | None = Field(default=None, gt=0, le=100)
    dd_penalty: float = Field(default=1.0, ge=0, description="penalised_return = return % - "
                              "dd_penalty * |max drawdown %|")


class RetrainModelConfig(BaseModel):
    """``walk_forward.retrain_model``: train a model on each window's train bars, then trade the
    test window with ``signals.params.mode: hybrid`` on that model beside ``mode: rules``."""

    model_config = _STRICT
    trainer: str = Field(default="cnn", description="entry point of tradebot.model_trainers")
    config: Path = Field(description="a training config (configs/train_tiny.yaml); its data "
                         "and output sections are replaced by each window's train bars")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted keys set over the "
                                "training config, e.g. training.epochs: 3")


class WalkForwardConfig(BaseModel):
    model_config = _STRICT
    mode: Literal["rolling", "anchored"] = "rolling"
    train_bars: int = Field(ge=100)
    test_bars: int = Field(ge=50)
    step_bars: int | None = Field(default=None, ge=1, description="default: test_bars")
    max_windows: int | None = Field(default=None, ge=1, description="keep the last N windows")
    test_all: bool = Field(default=True, description="also trade every candidate on each test "
                           "window (the in-sample vs out-of-sample scatter and PBO); the "
                           "selection never reads these")
    retrain_model: RetrainModelConfig | None = Field(
        default=None, description="retrain the CNN on each train window and report hybrid vs "
        "rules on the test window (docs/sweeps.md)")


class SweepExecution(BaseModel):
    model_config = _STRICT
    workers: int = Field(default=0, ge=0, le=256, description="local processes (0 = cores)")
    scheduler: str | None = Field(default=None, description="tcp://HOST:8786: a Dask cluster")
    per_task: int = Field(default=0, ge=0, le=256,
                          description="candidates per task at most (0 = automatic)")


class DiagnosticsConfig(BaseModel):
    model_config = _STRICT
    blocks: int = Field(default=8, ge=2, le=64, description="return blocks kept per run")
    cscv_splits: int = Field(default=10, ge=4, le=16, description="CSCV: even number of groups")

    @model_validator(mode="after")
    def _even(self) -> DiagnosticsConfig:
        if self.cscv_splits % 2:
            raise ValueError(f"cscv_splits must be even, got {self.cscv_splits}")
        return self


class ReportSettings(BaseModel):
    model_config = _STRICT
    top_n: int = Field(default=20, ge=1, le=1000)


class SweepConfig(BaseModel):
    model_config = _STRICT
    name: str = Field(default="sweep", pattern=r"^[A-Za-z0-9_.-]+$")
    base: Path | None = Field(default=None, description="a run config the sweep starts from")
    run: dict[str, Any] = Field(default_factory=dict, description="run-config keys merged over "
                                "base (or the whole run config)")
    space: dict[str, Any] = Field(description="path: [values] or {values | low, high, step, "
                                  "n, log, int}")
    search: SearchConfig = SearchConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    walk_forward: WalkForwardConfig | None = None
    execution: SweepExecution = SweepExecution()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    report: ReportSettings = ReportSettings()
    out: Path | None = Field(default=None, description="output folder (default runs/sweep-NAME)")
    max_candidates: int | None = Field(default=None, ge=1)

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("space is empty; name at least one parameter path to vary")
        for k, d in v.items():
            _dim(k, d)
        return v

    def dims(self) -> dict[str, Dim]:
        return {k: _dim(k, v) for k, v in self.space.items()}


def _dim(path: str, v: Any) -> Dim:
    from pydantic import ValidationError

    if isinstance(v, list | tuple):
        v = {"values": list(v)}
    if not isinstance(v, dict):
        raise ValueError(f"space.{path}: give a list of values or a mapping "
                         f"{{values | low, high, step}}, got {v!r}")
    try:
        return Dim.model_validate(v)
    except ValidationError as exc:
        msgs = "; ".join(
            (f"{'.'.join(str(x) for x in e['loc'])}: " if e["loc"] else "")
            + (e["msg"].removeprefix("Value error, ") if e["type"] != "extra_forbidden"
               else "unknown key (use values, low, high, step, n, log, int)")
            for e in exc.errors())
        raise ValueError(f"space.{path}: {msgs}") from None


# -- key paths --------------------------------------------------------------------------------
_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([A-Za-z0-9_.-]+)\])?$")
_LISTS = {"strategies": "name", "features": "id"}


def parse_path(path: str) -> list[tuple[str, str | None]]:
    """``strategies[x].params.y`` -> ``[("strategies", "x"), ("params", None), ("y", None)]``."""
    parts = []
    for tok in path.split("."):
        m = _PART.match(tok)
        if not m:
            raise ConfigError(f"space.{path}: {tok!r} is not a key; write keys like "
                              "signals.params.stop_atr_mult or strategies[NAME].params.KEY")
        parts.append((m.group(1), m.group(2)))
    if not parts:
        raise ConfigError("space: empty key path")
    return parts


def path_strategy(path: str) -> str | None:
    """The strategy a path belongs to (``strategies[NAME]...``), else None."""
    key, sel = parse_path(path)[0]
    return sel if key == "strategies" else None


def set_path(raw: dict[str, Any], path: str, value: Any, copy_on_write: bool = False) -> None:
    """Set ``path`` in a raw run-config dict; list entries are found by name/id.
    ``copy_on_write``: ``raw`` shares its nested mappings and lists with another config; each
    one on the way to the value is replaced by a shallow copy before it is changed."""
    parts = parse_path(path)
    node: Any = raw
    for i, (key, sel) in enumerate(parts):
        last = i == len(parts) - 1
        if sel is not None:
            items = node.get(key) if isinstance(node, dict) else None
            idk = _LISTS.get(key)
            if idk is None or not isinstance(items, list):
                raise ConfigError(f"space.{path}: {key}[...] selects an entry of a list "
                                  "(strategies by name, features by id)")
            hit = [j for j, it in enumerate(items) if isinstance(it, dict) and it.get(idk) == sel]
            if not hit:
                have = [it.get(idk) for it in items if isinstance(it, dict)]
                raise ConfigError(f"space.{path}: no {key} entry with {idk} {sel!r} in the "
                                  f"run config; it has {have}")
            if last:
                raise ConfigError(f"space.{path}: name a key inside {key}[{sel}], e.g. .params.X")
            if copy_on_write:
                items = node[key] = list(items)
                items[hit[0]] = dict(items[hit[0]])
            node = items[hit[0]]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"space.{path}: {key!r} is inside a value that is not a mapping")
        if last:
            node[key] = value
        else:
            if node.get(key) is None:
                node[key] = {}
            elif copy_on_write and isinstance(node[key], dict):
                node[key] = dict(node[key])
            node = node[key]


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# -- candidates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One point: a strategy of the base config and a value for every path that applies."""

    strategy: str
    params: tuple[tuple[str, Any], ...]
    config: RunConfig = field(compare=False, repr=False)
    key: str = ""

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @functools.cached_property
    def resolved(self) -> dict[str, Any]:
        """``config.resolved_dict()``, computed once (read it, do not change it)."""
        return self.config.resolved_dict()


class _Dumped:
    """A resolved dict standing in for its ``RunConfig``: ``RunConfig.config_hash`` (its own
    code, so the key stays the run's) hashes it without dumping the model again."""

    def __init__(self, resolved: dict[str, Any]) -> None:
        self._d = resolved

    def resolved_dict(self) -> dict[str, Any]:
        d = dict(self._d)  # config_hash pops top-level keys and from ``execution``
        if isinstance(d.get("execution"), dict):
            d["execution"] = dict(d["execution"])
        return d


@functools.cache
def _default_sections() -> dict[str, Any]:
    """The run config's sections whose default is a model instance (``publish``,
    ``telegram``, ...), dumped: given as data, pydantic builds each candidate's from it instead
    of deep-copying the default instance (a Python-level deep copy: ~45 % of a candidate's
    ``RunConfig`` validation). The resolved config, and so the key, is the same."""
    return {k: json.loads(f.default.model_dump_json()) for k, f in RunConfig.model_fields.items()
            if isinstance(f.default, BaseModel)}


def _config_hash(resolved: dict[str, Any]) -> str:
    """``RunConfig.config_hash`` of the config whose ``resolved_dict()`` is ``resolved``."""
    return RunConfig.config_hash(_Dumped(resolved))  # type: ignore[arg-type]


def _stable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


@dataclass
class SweepPlan:
    """The parsed sweep: the base run config (raw), its strategies and the dimensions."""

    spec: SweepConfig
    source: str
    base_raw: dict[str, Any]
    dims: dict[str, Dim]
    strategies: list[str]
    registries: Any = None
    # validations passed (strict scalars per swept value, plugin params per kind and params):
    # each is done once, not once per candidate (a 200-candidate grid has ~30 distinct ones)
    checked: set[tuple[str, ...]] = field(default_factory=set)
    # walk_forward.retrain_model: the trainer's validated training config (JSON-able)
    model_train: dict[str, Any] | None = None

    def dims_for(self, strategy: str) -> dict[str, Dim]:
        return {p: d for p, d in self.dims.items() if path_strategy(p) in (None, strategy)}

    def make(self, strategy: str, params: dict[str, Any], validate: bool = True) -> Candidate:
        """The candidate config (one strategy, candidate execution settings), validated."""
        # copy-on-write: only the mappings and lists on the way to a set value are copied
        # (a deep copy of the whole run config per candidate was most of the validation time)
        raw = {**_default_sections(), **self.base_raw}
        raw["strategies"] = [s for s in raw["strategies"] if s.get("name") == strategy]
        for p, v in params.items():
            set_path(raw, p, copy.deepcopy(v), copy_on_write=True)
        where = f"{self.source}: candidate {strategy} " + ", ".join(
            f"{p}={v!r}" for p, v in params.items())
        cfg = self._validate_run(raw, params, where)
        if validate:
            validate_plugins(cfg, where, self.registries, self.checked)
        items = tuple(sorted((p, _stable(v)) for p, v in params.items()))
        resolved = cfg.resolved_dict()
        c = Candidate(strategy, items, cfg, _config_hash(resolved))
        c.__dict__["resolved"] = resolved  # the cached property, filled: dumped once, not twice
        return c


    def _validate_run(self, raw: dict[str, Any], params: dict[str, Any],
                      where: str) -> RunConfig:
        """``validate_config(RunConfig, raw)`` with its strict-scalar walk done once per swept
        value: the base passed it (``plan_from_spec``) and a candidate differs from the base
        only in its swept values (and keeps one of its strategies), so checking the base with
        each value set finds exactly the candidate's problems."""
        from pydantic import ValidationError

        from engine.config import format_validation_error, strict_scalar_problems

        for p, v in params.items():
            k = ("run", p, json.dumps(v, sort_keys=True, default=str))
            if k in self.checked:
                continue
            probe = copy.deepcopy(self.base_raw)
            set_path(probe, p, v)
            strict = strict_scalar_problems(RunConfig, probe)
            if strict:
                raise ConfigError(f"{where}: invalid candidate:\n" + "\n".join(strict))
            self.checked.add(k)
        try:
            return RunConfig.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{where}: invalid candidate:\n{format_validation_error(exc)}"
                              ) from None
        except (TypeError, ValueError, RecursionError) as exc:
            raise ConfigError(f"{where}: invalid candidate: {type(exc).__name__}: {exc}"
                              ) from None


def validate_plugins(cfg: RunConfig, where: str, registries: Any = None,
                     checked: set[tuple[str, ...]] | None = None) -> None:
    """Phase two, as ``build_engine`` does it: every plugin's and handler's ``Params``
    (a (kind, params) pair already in ``checked`` passed before and is skipped)."""
    from engine.bootstrap import Registries, collect_features, strategy_class
    from engine.config import validate_params

    reg = registries or Registries()
    seen = checked if checked is not None else set()

    def once(what: str, kind: str, params: dict[str, Any], check: Any) -> None:
        k = (what, kind, json.dumps(params, sort_keys=True, default=str))
        if k not in seen:
            check()
            seen.add(k)

    try:
        sig = cfg.signals
        if sig is not None:
            once("signals", sig.kind, sig.params, lambda: validate_params(
                reg.strategies.load(sig.kind).Params, sig.params, "signals"))
        for s in cfg.strategies:
            once("strategy", s.kind, s.params, lambda s=s: validate_params(
                strategy_class(reg, s.kind, s.name).Params, s.params, f"strategies[{s.name}]"))
        for f in collect_features(cfg, reg):
            once("feature", f.kind, f.params, lambda f=f: validate_params(
                reg.features.load(f.kind).Params, f.params, f"features[{f.id}]"))
    except ConfigError as exc:
        raise ConfigError(f"{where}:\n{exc}") from None


def _candidate_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Candidates run one process each, no journal, no report, no progress bar."""
    raw = copy.deepcopy(raw)
    raw.setdefault("execution", {})
    raw["execution"] = {**(raw["execution"] or {}), "workers": 1}
    raw["journal"] = {"enabled": False}
    raw["output"] = {"dir": "runs/sweep-candidate", "progress": False, "report": False}
    return raw


def load_sweep(path: str | Path, data: str | Path | None = None,
               registries: Any = None) -> SweepPlan:
    """Read a sweep file: validate its schema, build the base run config.

    Raises:
        ConfigError: unknown keys, a bad range, a path that is not in the run config.
    """
    p = Path(path)
    raw = read_yaml(p, "sweep file")
    spec = validate_config(SweepConfig, raw, p, "sweep file")
    return plan_from_spec(spec, str(p), data=data, registries=registries)


def plan_from_spec(spec: SweepConfig, source: str = "sweep", *, data: str | Path | None = None,
                   registries: Any = None) -> SweepPlan:
    base: dict[str, Any] = {}
    if spec.base is not None:
        bp = spec.base
        if not bp.is_file() and not bp.is_absolute() and source != "sweep":
            # relative to the working directory, else to the sweep file's folder
            near = Path(source).parent / bp
            bp = near if near.is_file() else bp
        base = read_yaml(bp, "base run config")
    base = deep_merge(base, spec.run)
    if data is not None:
        base.setdefault("data", {})
        base["data"] = {**(base["data"] or {}), "file": str(data)}
    base = _candidate_defaults(base)
    validate_config(RunConfig, base, f"{source} (base run config)", "run config")
    names = [s.get("name") for s in base.get("strategies", [])]
    dims = spec.dims()
    for p in dims:
        parse_path(p)
        s = path_strategy(p)
        if s is not None and s not in names:
            raise ConfigError(f"{source}: space.{p}: the run config has no strategy named "
                              f"{s!r}; it has {names}")
        if parse_path(p)[0][0] in ("strategies", "features") and parse_path(p)[0][1] is None:
            raise ConfigError(f"{source}: space.{p}: select the entry, e.g. "
                              "strategies[NAME].params.KEY or features[ID].params.KEY")
        if p.startswith(("output.", "journal.", "execution.workers", "mode", "name")):
            raise ConfigError(f"{source}: space.{p}: not a parameter a sweep can vary")
    if registries is None:
        from engine.bootstrap import Registries

        registries = Registries()  # entry points read once, not per candidate
    plan = SweepPlan(spec, source, base, dims, names, registries)
    if spec.walk_forward is not None and spec.walk_forward.retrain_model is not None:
        plan.model_train = _retrain_config(spec.walk_forward.retrain_model, source, base, dims)
    return plan


MODEL_TRAINERS = "tradebot.model_trainers"


def model_trainer(name: str) -> Any:
    """A model trainer (``tradebot.model_trainers`` entry point, e.g. ``cnn`` =
    ``models.train:WindowTrainer``): ``validate(raw, where)`` and ``train(config, bars,
    out_dir, name, data_file)``. engine/ cannot import models/: this is how it reaches it."""
    from engine.errors import PluginLoadError
    from engine.registry import Registry

    try:
        return Registry.installed(MODEL_TRAINERS).load(name)
    except PluginLoadError as exc:
        msg = str(exc).replace(MODEL_TRAINERS, "model trainer")
        raise ConfigError(f"walk_forward.retrain_model.trainer: {msg}") from None


def _retrain_config(rm: RetrainModelConfig, source: str, base: dict[str, Any],
                    dims: dict[str, Dim]) -> dict[str, Any]:
    """Validate ``walk_forward.retrain_model`` up front: the training config (with ``set``),
    and that the optimisation itself cannot use a model trained on other bars."""
    where = f"{source}: walk_forward.retrain_model"
    sig = base.get("signals") or {}
    mode = (sig.get("params") or {}).get("mode", "rules")
    if sig.get("kind") != "signals":
        raise ConfigError(f"{where}: needs the run config's signals.kind: signals (its mode "
                          f"rules / hybrid is what is compared), got {sig.get('kind')!r}")
    if mode != "rules":
        raise ConfigError(
            f"{where}: the run config's signals.params.mode is {mode!r}: the optimisation on "
            "each train window would use a model trained on other bars (maybe the test "
            "window's); set it to rules (the comparison then runs hybrid with each window's "
            "own model)")
    bad = [p for p in dims if p.startswith(("signals.params.mode", "signals.params.nn_",
                                            "features[cnn]"))]
    if bad:
        raise ConfigError(f"{where}: space.{bad[0]} cannot be swept with retrain_model (each "
                          "window's hybrid run uses its own model); remove it from space")
    cp = rm.config
    if not cp.is_file() and not cp.is_absolute() and source != "sweep":
        near = Path(source).parent / cp  # relative to the working directory, else the file
        cp = near if near.is_file() else cp
    raw = read_yaml(cp, "training config", rm.set)
    validated = model_trainer(rm.trainer).validate(raw, f"{where}.config ({cp})")
    return {"trainer": rm.trainer, "source": str(cp), "config": validated}


def grid(plan: SweepPlan) -> list[tuple[str, dict[str, Any]]]:
    """Every grid point, strategy by strategy in config order."""
    out = []
    for s in plan.strategies:
        dims = plan.dims_for(s)
        values = [d.grid(p) for p, d in dims.items()]
        for combo in itertools.product(*values):
            out.append((s, dict(zip(dims, combo, strict=True))))
    return out


def validate_all(plan: SweepPlan, points: list[tuple[str, dict[str, Any]]]) -> list[Candidate]:
    """Validate every candidate (distinct configs only, in order).

    Raises:
        ConfigError: the first invalid candidate, with its key paths and values.
    """
    seen: dict[str, Candidate] = {}
    cache: dict[str, Candidate] = {}
    for s, params in points:
        c = _make_cached(plan, s, params, cache)
        seen.setdefault(c.key, c)
    return list(seen.values())


_PLUGIN_PATHS = ("signals", "strategies", "features")


def _make_cached(plan: SweepPlan, s: str, params: dict[str, Any],
                 cache: dict[str, Candidate]) -> Candidate:
    # plugin validation reads only the signals, strategies and features sections, which only
    # the paths under them change: candidates equal there (differing in data.file, account.*,
    # costs.*, ...) share it
    c = plan.make(s, params, validate=False)
    k = json.dumps([s, sorted((p, v) for p, v in params.items() if p.startswith(_PLUGIN_PATHS))],
                   sort_keys=True, default=str)
    if k not in cache:
        where = f"{plan.source}: candidate {s} " + ", ".join(
            f"{p}={v!r}" for p, v in params.items())
        validate_plugins(c.config, where, plan.registries, plan.checked)
        cache[k] = c
    return c


def validate_ranges(plan: SweepPlan) -> None:
    """Random/TPE: each range end and every listed value, one dimension at a time."""
    cache: dict[str, Candidate] = {}
    for s in plan.strategies:
        dims = plan.dims_for(s)
        mid = {p: d.ends()[0] for p, d in dims.items()}
        for p, d in dims.items():
            for v in d.ends():
                _make_cached(plan, s, {**mid, p: v}, cache)


def space_hash(plan: SweepPlan) -> str:
    blob = json.dumps({"base": plan.base_raw, "space": {k: v.model_dump() for k, v in
                                                         plan.dims.items()}},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
