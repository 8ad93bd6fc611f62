"""Property-based fuzzing of the two readers of user files: any input gives a result or one of
our errors (``engine.errors``), never another exception (a traceback for the user).

Bounded: a fixed number of examples each, no per-example deadline (a slow CI core must not turn a
parse into a failure), a few seconds per test.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import RunConfig, load_config, parse_yaml, read_yaml, validate_config
from engine.datafile import load_bars, validate_file
from engine.errors import EngineError

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

HEADER = "timestamp,open,high,low,close,volume"
GOOD_ROW = "2024-01-01 00:00:00,100,101,99,100.5,10"

# cells a bar file might really contain, valid and not
cells = st.one_of(
    st.sampled_from(["100", "101.5", "0", "-1", "1e308", "nan", "inf", "", " ", "abc", "1,5",
                     '"1"', "2024-01-01 00:15:00", "2024-01-01T00:30:00Z", "1704067200000",
                     "1704067200", "NULL", "\ufeff", "\x00"]),
    st.text(alphabet=string.printable, max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**15, max_value=10**15).map(str),
)
rows = st.lists(st.lists(cells, min_size=0, max_size=8).map(",".join), max_size=12)
headers = st.one_of(st.just(HEADER), st.permutations(HEADER.split(",")).map(",".join),
                    st.text(alphabet=string.printable, max_size=40))


def _bar_file(tmp: Path, header: str, body: list[str], ending: str) -> Path:
    p = tmp / "FUZZ-USDT_15m_data.csv"
    p.write_bytes((ending.join([header, *body]) + ending).encode("utf-8", "surrogatepass"))
    return p


@FUZZ
@given(header=headers, body=rows, ending=st.sampled_from(["\n", "\r\n", ""]),
       gaps=st.sampled_from(["fail", "keep", "fill"]))
def test_the_csv_reader_returns_bars_or_our_error(tmp_path_factory, header, body, ending, gaps):
    tmp = tmp_path_factory.mktemp("csv")
    p = _bar_file(tmp, header, body, ending)
    try:
        bars = load_bars(p, gaps=gaps, use_cache=False)
    except EngineError:
        pass
    else:
        assert len(bars) >= 1
    report = validate_file(p, gaps=gaps)  # never raises for bad data
    assert report.ok in (True, False)


@FUZZ
@given(body=st.lists(st.sampled_from([
    GOOD_ROW, "2024-01-01 00:15:00,100.5,102,100,101,12", "2024-01-01 01:00:00,1,2,0.5,1,0",
    "2024-01-01 00:15:00,1,1,1,1,1", "2023-12-31 23:45:00,5,6,4,5,1",
    "1704067200000,1,2,0.5,1,1", "2024-01-01 00:07:00,1,2,0.5,1,1", "", "x,1,2,3,4,5"]),
    min_size=1, max_size=12))
def test_near_valid_bar_files_give_bars_or_our_error(tmp_path_factory, body):
    p = _bar_file(tmp_path_factory.mktemp("csv"), HEADER, body, "\n")
    try:
        load_bars(p, gaps="fill", use_cache=False)
    except EngineError:
        pass


yaml_scalars = st.one_of(
    st.sampled_from(["yes", "no", "on", "1", "0.5", "-3", "1e-3", "null", "~", "''", "[]", "{}",
                     "stoch_cross", "x_15m_data.csv", "${HOME}", "${NOT_SET_ANYWHERE}", "!!binary",
                     "&a x", "*a", "<<", "|", ">", "'", '"', "#", ":", "- ", "? "]),
    st.text(alphabet=string.printable, max_size=10),
)
yaml_keys = st.sampled_from(["name", "mode", "data", "file", "account", "position_size_frac",
                             "strategies", "kind", "params", "costs", "execution", "output",
                             "close_at_end", "workers", "features", "id", "x"])
yaml_docs = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(yaml_keys, inner), max_size=4).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
    ),
    max_leaves=12,
)
block_docs = st.lists(st.tuples(yaml_keys, yaml_docs), max_size=6).map(
    lambda kv: "\n".join(f"{k}: {v}" for k, v in kv))


@FUZZ
@given(text=st.one_of(block_docs, yaml_docs, st.text(max_size=80)),
       overrides=st.dictionaries(st.sampled_from(["data.file", "output.dir", "data.gaps",
                                                  "x.y.z"]),
                                 st.sampled_from(["a.csv", "fill", "runs/x"]), max_size=2))
def test_the_config_loader_returns_a_config_or_our_error(tmp_path_factory, text, overrides):
    p = tmp_path_factory.mktemp("cfg") / "c.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        cfg = load_config(p, overrides)
    except EngineError:
        return
    assert isinstance(cfg, RunConfig)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_as_a_config_give_our_error(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("cfg") / "c.yaml"
    p.write_bytes(data)
    try:
        raw = read_yaml(p)
        validate_config(RunConfig, raw, p)
    except EngineError:
        pass


@pytest.mark.parametrize("text", ["[" * 1100, "a: " + "[" * 1100, "{a: " * 1100, "- " * 1100])
def test_deep_nesting_is_our_error(text):
    with pytest.raises(EngineError):
        parse_yaml(text, "deep.yaml")


def test_deep_nesting_is_our_error_under_a_raised_recursion_limit():
    """Something else in the process may have raised the recursion limit (the full suite did:
    the deep-nesting test passed alone and failed there), so depth is counted, not left to a
    RecursionError."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        with pytest.raises(EngineError, match="nested more than"):
            parse_yaml("- " * 1100, "deep.yaml")
        assert parse_yaml("a: [1, {b: [2]}]", "ok.yaml") == {"a": [1, {"b": [2]}]}
    finally:
        sys.setrecursionlimit(old)
