"""Outputs that never lie: checked before the run, locked, staged and moved into place whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import ConfigError
from engine.results import MARKER, check_output_file, claim_output, is_result_folder

ROOT = Path(__file__).resolve().parents[2]
SYNTH = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"


def bars_file(tmp_path: Path, n: int, name: str = "SYNTH-BTCUSDT_15m_data.csv") -> Path:
    lines = SYNTH.read_text().splitlines()
    p = tmp_path / name
    p.write_text("\n".join(lines[: n + 1]) + "\n")
    return p


def run(tmp_path: Path, out: Path, n: int = 600, *extra: str) -> int:
    return main(["run", str(ROOT / "configs" / "benchmark.yaml"), "--data",
                 str(bars_file(tmp_path, n)), "--out", str(out), "--no-progress", *extra])


def listing(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


# -- checked before the run --------------------------------------------------------------------


def test_an_existing_file_as_out_is_refused_before_the_run(tmp_path, capsys):
    out = tmp_path / "results"
    out.write_text("not a folder")
    assert run(tmp_path, out) == 2
    cap = capsys.readouterr()
    assert f"output folder {out} is a file" in cap.err and "--out" in cap.err
    assert "return %" not in cap.out  # refused before the backtest, not after
    assert out.read_text() == "not a folder"


def test_a_folder_below_a_file_and_an_unwritable_place_are_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"is a file, not a folder"):
        claim_output(blocker / "sub" / "out")
    # /proc refuses new files even to root: a real read-only place
    with pytest.raises(ConfigError, match=r"output folder /proc/tradebot-out.*--out"):
        claim_output("/proc/tradebot-out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_a_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="cannot write in"):
            claim_output(ro / "out")
    finally:
        ro.chmod(0o755)


def test_a_folder_of_other_files_is_never_replaced(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="not tradebot results"):
        claim_output(home)
    assert (home / "thesis.tex").read_text() == "years of work"


# -- atomic results ----------------------------------------------------------------------------


def test_results_replace_the_previous_run_whole(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(tmp_path, out) == 0
    assert is_result_folder(out) and (out / MARKER).is_file()
    (out / "stale-from-an-old-version.csv").write_text("old")
    first = json.loads((out / "metrics.json").read_text())
    assert run(tmp_path, out, 900) == 0
    second = json.loads((out / "metrics.json").read_text())
    assert first["stoch_cross"]["bars"] == 600 and second["stoch_cross"]["bars"] == 900
    assert not (out / "stale-from-an-old-version.csv").exists()  # no stale file beside new ones
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert f"results in {out}/" in capsys.readouterr().out


def test_leaving_without_commit_keeps_the_previous_result(tmp_path):
    out = tmp_path / "out"
    with claim_output(out) as o:
        (o.path / "metrics.json").write_text("first")
        o.commit()
    before = listing(out)
    with pytest.raises(KeyboardInterrupt), claim_output(out) as o:
        (o.path / "metrics.json").write_text("half of the second")
        raise KeyboardInterrupt
    assert listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging, no lock left


def test_ctrl_c_during_a_real_run_leaves_the_previous_result_or_the_new_one(tmp_path):
    out = tmp_path / "out"
    assert run(tmp_path, out) == 0
    before = listing(out)
    data = bars_file(tmp_path, 20_000)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", str(ROOT / "configs" / "benchmark.yaml"),
         "--data", str(data), "--out", str(out), "--no-progress"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    # interrupt once the run has claimed the folder (its staging folder exists)
    while not any(p.name.startswith(".out.partial-") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # (-SIGINT: the signal came while Python was exiting after the run; a shell shows 130 too)
    assert "Traceback" not in err and proc.returncode in (0, 130, -signal.SIGINT), err
    assert ("interrupted" in err) == (proc.returncode == 130)
    after = listing(out)
    # the previous result, or (the signal came after the results were in place) the new one,
    # complete: never a mix
    if after != before:
        assert json.loads(after["metrics.json"])["stoch_cross"]["bars"] == 20_000
        assert {"trades.csv", "equity.csv", "report.html", MARKER} <= after.keys()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- one run per folder ------------------------------------------------------------------------


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    with claim_output(out):
        assert run(tmp_path, out) == 2
        assert f"output folder {out} is in use by another run (pid {os.getpid()})" in (
            capsys.readouterr().err)
    assert run(tmp_path, out) == 0  # free again once the first is done


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / ".out.lock").write_text(f"{dead}\n")  # left by a killed run
    with claim_output(out) as o:
        assert (tmp_path / ".out.lock").read_text().strip() == str(os.getpid())
        o.commit()
    assert out.is_dir() and not (tmp_path / ".out.lock").exists()


# -- single output files -----------------------------------------------------------------------


def test_an_output_file_equal_to_its_input_is_refused(tmp_path):
    data = bars_file(tmp_path, 10)
    (tmp_path / "sub").mkdir()
    for spelling in (data, tmp_path / "sub" / ".." / data.name):
        with pytest.raises(ConfigError, match="is the input file"):
            check_output_file(spelling, inputs=(data,))
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_file(tmp_path, inputs=(data,))
    assert check_output_file(tmp_path / "new" / "x.csv", inputs=(data,)) == tmp_path / "new/x.csv"
    with pytest.raises(ConfigError, match=r"--out /proc/x.csv: cannot write in /proc"):
        check_output_file("/proc/x.csv")  # refused before the work even for root
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_data_synth_checks_its_out_before_the_work(tmp_path, capsys):
    real = bars_file(tmp_path, 50)
    before = real.read_bytes()
    assert main(["data", "synth", "--out", str(real), "--calibrate", str(real),
                 "--bars", "10"]) == 2
    assert "is the input file" in capsys.readouterr().err and real.read_bytes() == before
    assert main(["data", "synth", "--out", str(tmp_path), "--bars", "10"]) == 2
    assert "is a folder" in capsys.readouterr().err
    out = tmp_path / "gen" / "SYNTH-BTCUSDT_15m_data.csv"
    assert main(["data", "synth", "--out", str(out), "--bars", "300"]) == 0
    assert len(out.read_text().splitlines()) == 301
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


def test_an_interrupted_run_keeps_its_journal_beside_never_in_the_target(tmp_path):
    out = tmp_path / "out"
    with claim_output(out) as o:
        (o.path / "metrics.json").write_text("first")
        o.commit()
    before = listing(out)
    with pytest.raises(KeyboardInterrupt), claim_output(out) as o:
        (o.path / "journal.sqlite").write_bytes(b"orders and fills")
        (o.path / "metrics.json").write_text("half")
        raise KeyboardInterrupt
    assert listing(out) == before  # the target is untouched
    assert o.kept is not None and o.kept.name.startswith("out.interrupted-")
    assert (o.kept / "journal.sqlite").read_bytes() == b"orders and fills"
    assert not is_result_folder(o.kept) or not (o.kept / MARKER).exists()


@pytest.mark.parametrize("where", ["/proc/j.sqlite", "folder", "not-a-db"])
def test_a_journal_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys, where):
    path = {"folder": str(tmp_path), "not-a-db": str(tmp_path / "x.sqlite")}.get(where, where)
    (tmp_path / "x.sqlite").write_text("not a database")
    cfg = tmp_path / "j.yaml"
    cfg.write_text(f"data: {{file: {bars_file(tmp_path, 300)}}}\n"
                   "strategies: [{name: a, kind: stoch_cross}]\n"
                   f"journal: {{enabled: true, path: {path}}}\n")
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: journal {path}") and "journal.path" in err
    assert "Traceback" not in err and not out.exists()


def test_a_kept_output_folder_is_checked_before_the_work(tmp_path):
    from engine.results import check_output_folder

    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file; give a folder"):
        check_output_folder(tmp_path / "f")
    with pytest.raises(ConfigError, match="cannot write in /proc"):
        check_output_folder("/proc/weights")
    assert check_output_folder(tmp_path / "new" / "w") == tmp_path / "new" / "w"
    assert check_output_folder(tmp_path) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # probes removed, nothing made
