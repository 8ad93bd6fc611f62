"""Run configuration: YAML validated by pydantic v2 models that refuse unknown keys.

Validation has two phases: this core schema, then each plugin/handler validates its own
``params`` with its ``Params`` model once loaded (``engine.bootstrap``). ``${VAR}`` in any string
is replaced from the environment (and a ``.env`` file in the working directory) before
validation; a missing variable is an error naming the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import ConfigError
from engine.fills import IntrabarPolicy, MarketFill

_STRICT = ConfigDict(extra="forbid", frozen=True)


class DataConfig(BaseModel):
    model_config = _STRICT
    file: Path = Field(description="SYMBOL_TIMEFRAME_data.csv (relative to the working directory)")
    symbol: str | None = Field(default=None, pattern=r"^[A-Z0-9]+(-[A-Z0-9]+)*$")
    timeframe: str | None = Field(default=None, pattern=r"^\d+[mhdw]$")
    gaps: Literal["fail", "keep", "fill"] = "fail"
    start: str | None = Field(default=None, description="first bar open time to use (UTC)")
    end: str | None = Field(default=None, description="last bar open time to use (UTC)")


class AccountConfig(BaseModel):
    model_config = _STRICT
    initial_cash: float = Field(default=10_000.0, gt=0)
    position_size_frac: float = Field(default=0.5, gt=0, le=1.0)


class CostConfig(BaseModel):
    model_config = _STRICT
    taker_fee_bps: float = Field(default=5.0, ge=0, le=100)
    maker_fee_bps: float = Field(default=2.0, ge=-10, le=100)
    slippage_bps: float = Field(default=0.0, ge=0, le=500)


class ExecutionConfig(BaseModel):
    model_config = _STRICT
    market_fill: MarketFill = MarketFill.NEXT_OPEN
    intrabar: IntrabarPolicy = IntrabarPolicy.STOP_FIRST
    close_at_end: bool = Field(
        default=True, description="close open positions at the last bar's close (END_OF_DATA)"
    )
    workers: int = Field(
        default=0, ge=0, le=256,
        description="backtests with several strategies: processes that run them side by side "
        "after the shared features and signals (0 = auto: one per core, when it pays; 1 = all "
        "in this process). Same trades either way.",
    )


class FeatureConfig(BaseModel):
    model_config = _STRICT
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class StrategyConfig(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class SignalsConfig(BaseModel):
    """The shared entry rule whose ``SignalRaised`` events every exit-plugin strategy trades."""

    model_config = _STRICT
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class JournalConfig(BaseModel):
    model_config = _STRICT
    enabled: bool = False
    path: Path = Path("runs/journal.sqlite")
    include_bars: bool = False


class OutputConfig(BaseModel):
    model_config = _STRICT
    dir: Path = Path("runs/latest")
    progress: bool = True
    report: bool = Field(default=True, description="write comparison.csv/txt, report.html "
                         "(interactive equity curves) and equity.png into dir")


class RunConfig(BaseModel):
    model_config = _STRICT
    name: str = "run"
    mode: Literal["backtest", "paper", "live"] = "backtest"
    data: DataConfig
    account: AccountConfig = AccountConfig()
    costs: CostConfig = CostConfig()
    execution: ExecutionConfig = ExecutionConfig()
    features: tuple[FeatureConfig, ...] = ()
    signals: SignalsConfig | None = None
    strategies: tuple[StrategyConfig, ...] = Field(min_length=1)
    output: OutputConfig = OutputConfig()
    journal: JournalConfig = JournalConfig()

    @field_validator("strategies")
    @classmethod
    def _unique_names(cls, v: tuple[StrategyConfig, ...]) -> tuple[StrategyConfig, ...]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"strategy names must be unique; repeated: {dup}")
        return v

    @model_validator(mode="after")
    def _unique_feature_ids(self) -> RunConfig:
        ids = [f.id for f in self.features]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"feature ids must be unique; repeated: {dup}")
        return self

    def resolved_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())

    def config_hash(self) -> str:
        blob = json.dumps(self.resolved_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


M = TypeVar("M", bound=BaseModel)
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _load_dotenv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip().strip("'\"")
    return out


def _interpolate(node: Any, where: str, env: dict[str, str], src: str) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else str(k), env, src)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{where}[{i}]", env, src) for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            var = m.group(1)
            if var not in env:
                raise ConfigError(
                    f"{src}: {where}: environment variable {var} is not set; export it or add "
                    f"it to .env (see .env.example)"
                )
            return env[var]

        return _ENV_RE.sub(sub, node)
    return node


def read_yaml(path: str | Path, what: str = "config",
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML mapping, replace ``${NAME}`` from the environment or ``.env``, and set the
    dotted ``overrides``; the first phase of every config loader (run and training configs).

    Raises:
        ConfigError: missing file, bad YAML, not a mapping, missing environment variable.
    """
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} file {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(raw).__name__}")
    env = {**_load_dotenv(Path(".env")), **os.environ}
    raw = _interpolate(raw, "", env, str(p))
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return raw


def validate_config(model: type[M], raw: dict[str, Any], path: str | Path,
                    what: str = "config") -> M:
    """The second phase: validate ``raw`` with ``model``, every problem named by key path.

    Raises:
        ConfigError: unknown keys, wrong types or values.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid {what}:\n{format_validation_error(exc)}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read, interpolate and validate a YAML run config.

    Args:
        overrides: dotted keys to set after reading (e.g. ``{"data.file": "x.csv"}``).

    Raises:
        ConfigError: unreadable file, bad YAML, unknown keys, wrong types, missing env vars;
            the message names the file and every offending key path.
    """
    return validate_config(RunConfig, read_yaml(path, "config", overrides), path)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``key.path: message (got value)``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/config.md for the valid keys)"
        got = err.get("input")
        shown = "" if err["type"] in ("extra_forbidden", "missing") else f" (got {got!r})"
        lines.append(f"  {loc}: {msg}{shown}")
    return "\n".join(lines)


def validate_params(model: type[BaseModel], params: dict[str, Any], where: str) -> BaseModel:
    """Second phase: validate a plugin's ``params`` with its own model."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        text = format_validation_error(exc).replace("  ", f"  {where}.params.", 1)
        text = text.replace("\n  ", f"\n  {where}.params.")
        raise ConfigError(f"invalid params for {where}:\n{text}") from None
