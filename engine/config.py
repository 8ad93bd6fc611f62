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
    file: Path | None = Field(
        default=None,
        description="SYMBOL_TIMEFRAME_data.csv (relative to the working directory); needed in "
        "backtest mode")
    symbol: str | None = Field(default=None, pattern=r"^[A-Z0-9]+(-[A-Z0-9]+)*$")
    timeframe: str | None = Field(default=None, pattern=r"^\d+[mhdw]$")
    gaps: Literal["fail", "keep", "fill"] = "fail"
    start: str | None = Field(default=None, description="first bar open time to use (UTC)")
    end: str | None = Field(default=None, description="last bar open time to use (UTC)")
    # paper/live: candles from ApeX Omni (adapters/apex/feed.py, docs/apex.md)
    venue: str | None = Field(
        default=None, description="paper/live: main, test, or the base URL of a local venue "
        "(http://127.0.0.1:PORT); `tradebot run --venue URL` overrides it")
    poll_interval_s: float = Field(
        default=1.0, gt=0, le=60,
        description="paper/live: pause between polls once a close is due and not yet published")
    max_wait_s: float = Field(
        default=5.0, gt=0, le=600,
        description="paper/live: longest sleep before asking the venue's clock again")
    warmup_bars: int | None = Field(
        default=None, ge=0,
        description="paper/live: closed candles fetched as history on start (default: as many "
        "as the configured handlers need)")
    timeout_s: float = Field(default=10.0, gt=0, le=120,
                             description="paper/live: HTTP timeout per venue request")
    websocket: str | None = Field(
        default=None, description="live: the venue's websocket (main, test, or a local venue's "
        "ws://127.0.0.1:PORT): the broker books fills as the account stream pushes them, the "
        "fills endpoint staying the authority; none: fills from the endpoint at each bar")


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
    confirm: Literal["none", "telegram"] = Field(
        default="none",
        description="alert-first (paper/live, engine/confirm.py): 'telegram' holds every entry "
        "taken on a signal until the alert's 'Take it' is tapped; 'Skip' or the timeout drops "
        "it. Needs the bridge (publish) and the Telegram front end (telegram.enabled, or "
        "`tradebot telegram` beside the run)",
    )
    confirm_timeout_s: float = Field(
        default=120.0, gt=0, le=86_400,
        description="alert-first: an entry not taken within this many seconds is dropped",
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
    apex_env: str | None = Field(
        default=None, pattern=r"^[A-Z][A-Z0-9_]*$",
        description="live: the prefix of the environment variables holding this strategy's own "
        "Apex account (APEX_X -> APEX_X_API_KEY, APEX_X_API_SECRET, APEX_X_API_PASSPHRASE, "
        "APEX_X_ZK_SEEDS); default APEX (APEX_API_KEY...). One account per strategy: the venue "
        "nets a symbol into one position per account")


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


class CurveConfig(BaseModel):
    """ZeroMQ CURVE keys of the bridge (certificates from ``zmq.auth.create_certificates``)."""

    model_config = _STRICT
    server_secret_file: Path = Field(description="the bridge's secret certificate "
                                     "(NAME.key_secret)")
    clients_dir: Path = Field(description="folder of the public certificates (NAME.key) of the "
                              "clients allowed to connect; any other peer is refused")


class PublishConfig(BaseModel):
    """The ZeroMQ bridge to the UI and alert front ends (adapters/zmq_bridge.py, docs/ui.md)."""

    model_config = _STRICT
    enabled: bool = False
    pub: str = Field(default="tcp://127.0.0.1:5555", pattern=r"^(tcp|ipc|inproc)://.+",
                     description="PUB socket for events (wire v1: engine/wire.py)")
    commands: str = Field(default="tcp://127.0.0.1:5556", pattern=r"^(tcp|ipc|inproc)://.+",
                          description="ROUTER socket for snapshots and commands")
    hwm: int = Field(default=10_000, ge=1, description="send high-water mark per subscriber: "
                     "beyond it a slow subscriber loses messages (and resyncs), the engine never "
                     "waits")
    snapshot_bars: int = Field(default=2_000, ge=1, le=100_000,
                               description="most bars (with features and equity) in a snapshot")
    heartbeat_s: float = Field(default=1.0, gt=0, le=60, description="status message period")
    speed: float = Field(default=0.0, ge=0, description="replay pace in bars per second "
                         "(0 = as fast as possible; live bars come at their own pace)")
    max_cpu_share: float = Field(default=0.02, gt=0, le=1, description="share of the time the "
                                 "publisher may spend while the engine runs flat out; bars beyond "
                                 "it are skipped as a gap (1 = never skip)")
    curve: CurveConfig | None = Field(default=None, description="required to bind a "
                                      "non-loopback address")


class TelegramConfig(BaseModel):
    """The Telegram front end (adapters/telegram, docs/telegram.md). The bot token and the chat
    allowlist come only from the environment (TELEGRAM_BOT_TOKEN, TELEGRAM_ALLOWED_CHAT_IDS)."""

    model_config = _STRICT
    enabled: bool = False
    mute: tuple[Literal["signal", "fill", "stop", "trade", "alert", "command", "summary"],
                ...] = Field(default=(), description="alert kinds not sent")
    routes: dict[str, tuple[int, ...]] = Field(
        default_factory=dict, description="alert kind -> chat ids (each in the allowlist); a "
        "kind not listed goes to every allowed chat")
    rate_limit_per_min: int = Field(default=20, ge=1, le=600,
                                    description="most alerts per chat per minute (the rest wait)")
    daily_summary: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                      description="HH:MM UTC of the daily summary (none: off)")
    confirm_timeout_s: float = Field(default=60.0, gt=0, le=3600,
                                     description="a trading command's confirm button expires")
    outbox: Path = Field(default=Path("runs/telegram_outbox.sqlite"),
                         description="SQLite delivery queue of the alerts")
    chart_bars: int = Field(default=96, ge=10, le=2000, description="candles in an alert chart")
    default_strategy: str | None = Field(default=None, description="strategy of /buy, /sell "
                                         "without strategy=NAME (default: the first one)")
    request_timeout_s: float = Field(default=3.0, gt=0, le=60,
                                     description="command channel reply timeout")


class RiskConfig(BaseModel):
    """Risk limits checked before every order (``engine.risk.RiskGate``; docs/config.md)."""

    model_config = _STRICT
    max_position_notional: float | None = Field(
        default=None, gt=0, description="most quote currency (USDT) one strategy's position may "
        "be worth after an entry, at the order's price")
    max_open_positions: int | None = Field(
        default=None, ge=1, description="most strategies in a position at once; more entries wait")
    max_orders_per_minute: int | None = Field(
        default=None, ge=1, description="entries refused once this many orders went out in the "
        "last 60 s (exits and stop moves are counted, never refused)")
    max_daily_loss: float | None = Field(
        default=None, gt=0, description="quote currency lost since the UTC day's first bar "
        "(realized and open, all strategies) that stops entries until the next UTC day")
    kill_switch: bool = Field(default=False, description="refuse every new entry (exits and "
                              "stops still go out)")


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
    publish: PublishConfig = PublishConfig()
    telegram: TelegramConfig = TelegramConfig()
    risk: RiskConfig | None = None  # no limits unless configured (engine/risk.py)

    @field_validator("strategies")
    @classmethod
    def _unique_names(cls, v: tuple[StrategyConfig, ...]) -> tuple[StrategyConfig, ...]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"strategy names must be unique; repeated: {dup}")
        return v

    @model_validator(mode="after")
    def _data_source(self) -> RunConfig:
        if self.mode == "backtest" and self.data.file is None:
            raise ValueError("data.file is required in backtest mode (a SYMBOL_TIMEFRAME_data.csv"
                             "; or give --data FILE)")
        return self

    @model_validator(mode="after")
    def _confirm_needs_a_person(self) -> RunConfig:
        if self.execution.confirm != "none" and self.mode == "backtest":
            raise ValueError(
                f"execution.confirm: {self.execution.confirm} waits for a tap on each signal's "
                "alert, and nobody can tap during a backtest: use mode paper or live, or "
                "execution.confirm: none")
        return self

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
        d = self.resolved_dict()
        d.pop("publish", None)  # watching a run does not make it another run
        d.pop("telegram", None)
        if d.get("risk") is None:  # no risk section: the hash of the configs before it existed
            d.pop("risk", None)
        ex = d.get("execution") or {}
        if ex.get("confirm") == "none":  # likewise without alert-first
            ex.pop("confirm", None)
            ex.pop("confirm_timeout_s", None)
        blob = json.dumps(d, sort_keys=True).encode()
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (plain YAML keeps the last
    one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: let the base class report it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping, on lines {first} and "
                    f"{line} (YAML would keep only the last); delete one of them",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


MAX_YAML_DEPTH = 64  # a run config nests about 5 deep; deeper is not a config


def _check_depth(root: yaml.Node, where: str) -> None:
    """Refuse nesting deeper than ``MAX_YAML_DEPTH``, whatever Python's recursion limit is
    (another library may have raised it, so a RecursionError is no guard)."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(
                f"{where}: nested more than {MAX_YAML_DEPTH} levels deep (line "
                f"{node.start_mark.line + 1}); a run config is a few levels of mappings")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text with repeated keys refused.

    Raises:
        ConfigError: not valid YAML (the message has the line and column).
    """
    try:
        import io

        stream = io.StringIO(text)
        stream.name = where  # marks say "in <file>, line L, column C"
        loader = _UniqueKeyLoader(stream)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_depth(node, where)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    except (RecursionError, ValueError, OverflowError) as exc:  # e.g. nesting too deep
        raise ConfigError(
            f"{where}: not a usable YAML file ({type(exc).__name__}: {exc})") from None


def _read_text(p: Path, what: str) -> str:
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a folder; give the path of a YAML file "
                          "(e.g. configs/default.yaml)")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} file {p}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} file {p} is not a text file (byte {exc.start} is not UTF-8); "
                          "give the path of a YAML file") from None
    if "\x00" in text:
        raise ConfigError(f"{what} file {p} is a binary file (it contains NUL bytes); give the "
                          "path of a YAML file")
    return text


def read_yaml(path: str | Path, what: str = "config",
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML mapping, replace ``${NAME}`` from the environment or ``.env``, and set the
    dotted ``overrides``; the first phase of every config loader (run and training configs).

    Raises:
        ConfigError: missing file, a folder, a binary file, bad YAML, a key repeated in one
            mapping (both lines named), not a mapping, missing environment variable, an override
            below a key that is not a mapping.
    """
    p = Path(path)
    raw = parse_yaml(_read_text(p, what), str(p))
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(raw).__name__}")
    env = {**_load_dotenv(Path(".env")), **os.environ}
    raw = _interpolate(raw, "", env, str(p))
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for i, key in enumerate(parents):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                where = ".".join(parents[: i + 1])
                raise ConfigError(f"{p}: {where} must be a mapping of keys (to set {dotted}), "
                                  f"got {type(node).__name__}")
        node[last] = value
    return raw


# -- strict scalars ----------------------------------------------------------------------------


def _scalar_kind(annotation: Any) -> str | None:
    """"bool", "number" or None for a field's annotation (Optional and Annotated unwrapped)."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar_kind(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds = {_scalar_kind(a) for a in typing.get_args(annotation) if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else None
    if annotation is bool:
        return "bool"
    if annotation in (int, float):
        return "number"
    return None


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X (other unions are kept)."""
    import types
    import typing

    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _value_problems(annotation: Any, value: Any, path: str) -> list[str]:
    """Strict-scalar problems of one value against its annotation, walking nested models,
    sequences (``tuple[int, ...]``, ``list[float]``) and mapping values (``dict[str, int]``)."""
    import typing

    if value is None:
        return []
    kind = _scalar_kind(annotation)
    if kind == "number" and isinstance(value, bool):
        # (a numeric string such as "1e-3", which YAML 1.1 leaves a string, is converted)
        return [f"  {path}: must be a number, got {value!r} (YAML reads "
                "yes/no/on/off/true/false as booleans)"]
    if kind == "bool" and not isinstance(value, bool):
        return [f"  {path}: must be true or false, got {value!r}"]
    if kind is not None:
        return []
    ann = _unwrap(annotation)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return strict_scalar_problems(ann, value, path)
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    out: list[str] = []
    if origin in (tuple, list, set, frozenset) and isinstance(value, list | tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            pairs = list(zip(args, value, strict=False))
        else:
            item = args[0] if args else Any
            pairs = [(item, v) for v in value]
        for i, (a, v) in enumerate(pairs):
            out += _value_problems(a, v, f"{path}[{i}]")
    elif origin is dict and isinstance(value, dict) and len(args) == 2:
        for k, v in value.items():
            out += _value_problems(args[1], v, f"{path}.{k}")
    return out


def strict_scalar_problems(model: type[BaseModel], raw: Any, where: str = "") -> list[str]:
    """Values that pydantic would silently convert: a YAML boolean (``yes``, ``on``, ``true``)
    for a number, a number or a string for a boolean (``close_at_end: 1``). One line per
    problem, ``key.path: message (got ...)``; nested models, sequences and mapping values are
    walked."""
    if not isinstance(raw, dict):
        return []
    out: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in raw:
            out += _value_problems(field.annotation, raw[key], f"{where}.{key}" if where else key)
    return out


def validate_config(model: type[M], raw: dict[str, Any], path: str | Path,
                    what: str = "config") -> M:
    """The second phase: validate ``raw`` with ``model``, every problem named by key path.

    Raises:
        ConfigError: unknown keys, wrong types or values; a scalar of the wrong kind that
            pydantic would convert (``strict_scalar_problems``).
    """
    strict = strict_scalar_problems(model, raw)
    if strict:
        raise ConfigError(f"{path}: invalid {what}:\n" + "\n".join(strict))
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid {what}:\n{format_validation_error(exc)}") from None
    except (TypeError, ValueError, RecursionError) as exc:  # a value pydantic cannot even read
        raise ConfigError(f"{path}: invalid {what}: {type(exc).__name__}: {exc}") from None


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
    """One line per problem: ``key.path: message (got value)``; after ``MAX_PROBLEMS`` lines the
    rest are counted (a file that is not a config at all would list every line of it)."""
    lines = []
    errors = exc.errors()
    for err in errors[:MAX_PROBLEMS]:
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/config.md for the valid keys)"
        got = err.get("input")
        shown = "" if err["type"] in ("extra_forbidden", "missing") else f" (got {got!r})"
        lines.append(f"  {loc}: {msg}{shown}")
    if len(errors) > MAX_PROBLEMS:
        more = len(errors) - MAX_PROBLEMS
        lines.append(f"  ... and {more} more problems (is this a run config?)")
    return "\n".join(lines)


MAX_PROBLEMS = 12


def validate_params(model: type[BaseModel], params: dict[str, Any], where: str) -> BaseModel:
    """Second phase: validate a plugin's ``params`` with its own model (strict scalars too)."""
    strict = strict_scalar_problems(model, params, f"{where}.params")
    if strict:
        raise ConfigError(f"invalid params for {where}:\n" + "\n".join(strict))
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        text = format_validation_error(exc).replace("  ", f"  {where}.params.", 1)
        text = text.replace("\n  ", f"\n  {where}.params.")
        raise ConfigError(f"invalid params for {where}:\n{text}") from None
