"""Start fast: only the command run is imported, every --help works, Ctrl-C is clean, and the
caches land in one place however tradebot is started."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from engine.cli import main, static_help

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(ep.name for ep in entry_points(group="tradebot.commands"))
# none of these may be imported to print `tradebot --help`
HEAVY = ("torch", "numba", "pandas", "scipy", "sklearn", "dash", "plotly", "matplotlib", "zmq",
         "apexomni", "dask", "optuna", "telegram", "pydantic", "yaml", "numpy")


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env or dict(os.environ), timeout=120)


def test_top_level_help_imports_no_command_and_lists_every_one():
    res = _python(
        "import sys\n"
        "from engine.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "cmds = sorted(m for m in sys.modules if m.endswith(('_cli', '.cli', 'run_command')) "
        "and m != 'engine.cli')\n"
        "print('HEAVY', heavy, 'COMMANDS', cmds)\n")
    assert res.returncode == 0, res.stderr
    assert "HEAVY [] COMMANDS []" in res.stdout
    for name in COMMANDS:
        assert name in res.stdout
    assert "run a YAML config" in res.stdout  # each command's one-line help, read statically


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_works(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert f"usage: tradebot {name}" in capsys.readouterr().out


def test_static_help_reads_the_source_without_importing():
    assert static_help("engine.run_command:register") == (
        "run a YAML config (backtest, paper or live)")
    assert static_help("indicators.cli:register").startswith("write every indicator column")
    assert static_help("no.such.module:register") == ""
    assert static_help("engine.run_command:no_such_function") == ""


def test_a_command_runs_without_importing_the_others():
    demo = ROOT / "tests" / "fixtures" / "DEMO-USDT_15m_data.csv"
    res = _python(
        "import sys\n"
        "from engine.cli import main\n"
        f"rc = main(['data', 'validate', {str(demo)!r}])\n"
        "print('RC', rc, 'TORCH', 'torch' in sys.modules, 'OTHERS', sorted(m for m in "
        "sys.modules if m in ('engine.run_command', 'indicators.cli', 'models.cli', "
        "'engine.plugins_cli', 'engine.sweep.cli')))\n")
    assert "RC 0 TORCH False OTHERS []" in res.stdout, res.stderr


def test_ctrl_c_inside_a_startup_import_is_interrupted_not_a_traceback():
    # Ctrl-C lands while `tradebot train` imports torch: a finder raises KeyboardInterrupt there,
    # exactly what the signal handler raises in the middle of an import
    res = _python(
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from engine.cli import main\n"
        "sys.exit(main(['train', 'configs/train_tiny.yaml']))\n")
    assert res.returncode == 130
    assert res.stderr.strip() == "interrupted"


def test_a_broken_command_module_is_an_error_not_a_traceback(capsys):
    # the real `train` command with its module made unimportable
    sys.modules["models.cli"] = None  # type: ignore[assignment]
    try:
        assert main(["train", "--help"]) == 2
    finally:
        del sys.modules["models.cli"]
    assert "command 'train'" in capsys.readouterr().err


def test_caches_have_one_default_for_make_direct_and_tests():
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "TRADEBOT_CACHE_DIR")}
    res = _python("import indicators.kernels.stoch, numba.core.config as c, engine.datafile as d\n"
                  "print(c.CACHE_DIR); print(d.cache_dir())", env)
    assert res.stdout.split() == [str(ROOT / ".cache" / "numba"),
                                  str(ROOT / ".cache" / "tradebot")], res.stderr
    # the Makefile sets neither: `make run` and a direct `tradebot run` share the default
    make = (ROOT / "Makefile").read_text()
    assert "export NUMBA_CACHE_DIR" not in make and "export TRADEBOT_CACHE_DIR" not in make
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    assert 'setdefault("NUMBA_CACHE_DIR"' not in conftest


def test_the_fast_entry_point_scan_agrees_with_importlib_metadata():
    from engine.cli import COMMANDS as CLI_COMMANDS
    from engine.cli import command_entry_points
    from engine.registry import COMMANDS as REGISTRY_COMMANDS

    assert CLI_COMMANDS == REGISTRY_COMMANDS
    expected = {ep.name: ep.value for ep in entry_points(group=REGISTRY_COMMANDS)}
    assert command_entry_points() == expected and "run" in expected


@pytest.mark.parametrize("words", [["run", "c.yaml"], ["check-lookahead", "c.yaml"],
                                   ["indicators", "--data", "x.csv", "--out", "y.csv"],
                                   ["data", "validate", "x.csv"]])
def test_the_commands_the_data_hints_name_take_those_flags(words):
    # engine/datafile.py's hints send the user to --symbol/--timeframe/--gaps on these commands
    from engine.cli import build_parser

    args = build_parser(words).parse_args(
        [*words, "--symbol", "BTCUSDT", "--timeframe", "1h", "--gaps", "fill"])
    assert (args.symbol, args.timeframe, args.gaps) == ("BTCUSDT", "1h", "fill")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_a_real_ctrl_c_while_torch_is_imported_exits_130_without_a_traceback(tmp_path):
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "train", str(ROOT / "configs" / "train_tiny.yaml"),
         "--out", str(tmp_path), "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 120
    # wait until torch's native library is being loaded: the import is under way
    while "libtorch" not in (maps.read_text() if maps.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
