"""Write a run's results: resolved config, metrics, trades and equity, and the printed table.

Outputs never lie: a results folder holds the complete results of one run, or it is left as it
was. ``claim_output`` checks the target before the run starts and locks it; everything is written
into a private staging folder beside the target, and ``OutputDir.commit`` moves it into place only
when complete. So Ctrl-C (or a crash) at any moment leaves the previous complete result or none,
never a mix, and no stale file of an earlier run sits beside new ones.

Use::

    with claim_output(cfg.output.dir) as out:      # ConfigError now, before any work
        engine = build_engine(cfg)
        try:
            engine.run()
        except KeyboardInterrupt:                   # paper: results of the period run so far
            stopped = True
        write_results(out.path, cfg, engine.accounts, engine.store, metrics)
        out.commit()                                # atomic; releases the lock
    # leaving the block without commit() (an exception, a second Ctrl-C): the staging folder is
    # deleted, the lock released, the target untouched

Rules (README, "Results"):

- **Check first.** The target must not be a file; it must be creatable (every existing ancestor
  a writable folder) and, when it exists, be empty or an earlier tradebot result (it has the
  ``.tradebot-results`` marker, or ``config.resolved.yaml`` + ``metrics.json``): a folder with
  other files (``--out .``, a home folder) is refused, never replaced. Problems are a
  ``ConfigError`` naming the path and what to do.
- **Lock.** ``<parent>/.<name>.lock`` holds an exclusive ``flock`` and the owner's pid for the
  life of the claim: a second run into the same folder is refused with the first one's pid. The
  kernel drops the lock when its process dies, so a stale lock of a dead process is taken over.
- **Stage, then move.** ``OutputDir.path`` is ``<parent>/.<name>.partial-<pid>-<random>/``.
  ``commit`` writes the marker and swaps the staging folder with the previous result
  (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, the previous result set
  aside as ``.<name>.old-<pid>``), then deletes the previous result. The target is at every
  moment the previous complete result, the new complete result, or (without the atomic swap,
  for the instant between two renames) nothing. A Ctrl-C during ``commit`` is held back until
  the swap and the clean-up are done, then raised as usual.
- **Journal.** A journal that belongs to the run (paper/live ``journal.sqlite``) is written into
  ``OutputDir.path`` while the run goes on and moves into the target with the rest at ``commit``,
  so the target's journal always matches its trades. A run that ends without ``commit`` (a
  second Ctrl-C, an error) keeps a staging folder that holds a journal as
  ``<target>.interrupted-<UTC time>/`` (``OutputDir.abort``); anything else staged is deleted.
  If the process is killed (SIGKILL, power loss) before ``commit``, the staging folder, journal
  included, is left where it is (never deleted by a later run: a later claim only warns).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.bars import BarStore
    from engine.config import RunConfig
    from engine.portfolio import Account

logger = logging.getLogger(__name__)

MARKER = ".tradebot-results"
# files an interrupted run must not lose (see OutputDir.abort)
PRESERVE_ON_ABORT = ("journal.sqlite",)
# files whose presence together marks a folder written by an older tradebot
_LEGACY_RESULT = ("config.resolved.yaml", "metrics.json")


def _fix(path: Path) -> str:
    return f"choose another --out (output.dir) or fix the permissions of {path}"


def _check_creatable(path: Path, what: str) -> None:
    """Every existing ancestor of ``path`` must be a writable folder."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{what} {path}: {parent} is a file, not a folder; "
                                  f"choose another --out (output.dir)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{what} {path}: cannot write in {parent} (permission "
                                  f"denied or read-only); {_fix(parent)}")
            return


class OutputDir:
    """A claimed, locked results folder (see the module docstring); made by ``claim_output``.

    Attributes:
        target: the final folder (``output.dir`` / ``--out``).
        path: the staging folder to write every result file (and a run's journal) into.
    """

    def __init__(self, target: Path) -> None:
        import secrets

        self.target = target
        # pid for the reader, a random part so that a reused pid never meets an old folder
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.path = target.parent / f".{target.name}.partial-{tag}"
        self._lock_path = target.parent / f".{target.name}.lock"
        self._lock_fd: int | None = None
        self.committed = False
        self.preserve_on_abort: set[str] = set(PRESERVE_ON_ABORT)
        self.kept: Path | None = None  # where an aborted run's preserved files went

    # -- lock ----------------------------------------------------------------------------------

    def _lock(self) -> None:
        import fcntl

        while True:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(f"output folder {self.target}: cannot create the lock file "
                                  f"{self._lock_path} ({exc.strerror}); "
                                  f"{_fix(self.target.parent)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ConfigError(
                    f"output folder {self.target} is in use by another run (pid {owner}); wait "
                    "for it to finish, or choose another --out (output.dir)") from None
            # the file may have been unlinked by its previous owner after we opened it
            try:
                same = self._lock_path.stat().st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._lock_fd = fd
                return
            os.close(fd)

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            self._lock_path.unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    # -- life cycle ----------------------------------------------------------------------------

    def _open(self) -> None:
        target = self.target
        _check_creatable(target, "output folder")
        if target.exists() or target.is_symlink():
            if not target.is_dir():
                raise ConfigError(f"output folder {target} is a file; choose another --out "
                                  "(output.dir) or delete the file")
            if not is_result_folder(target):
                raise ConfigError(
                    f"output folder {target} holds files that are not tradebot results; it "
                    "would be replaced, so it is refused: choose a new or empty folder for "
                    "--out (output.dir)")
            if not os.access(target, os.W_OK | os.X_OK):
                raise ConfigError(f"output folder {target} is not writable; {_fix(target)}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"output folder {target}: cannot create {target.parent} "
                              f"({exc.strerror}); {_fix(target.parent)}") from None
        self._lock()
        try:
            for stale in target.parent.glob(f".{target.name}.partial-*"):
                if stale != self.path:
                    logger.warning("%s: left by a run that did not finish (killed?); tradebot "
                                   "never deletes it: look inside, then remove it", stale)
            self.path.mkdir()
        except OSError as exc:
            self._unlock()
            raise ConfigError(f"output folder {target}: cannot write beside it "
                              f"({exc.strerror}: {exc.filename}); {_fix(target.parent)}") from None

    def commit(self) -> Path:
        """Move the complete results into place (see the module docstring); release the lock.

        Returns:
            The target folder.
        """
        if self.committed:
            return self.target
        (self.path / MARKER).write_text(json.dumps({"pid": os.getpid()}) + "\n")
        old = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
        # Ctrl-C is held back until the swap and the clean-up are done (then raised as usual):
        # an interrupted clean-up would leave half of the previous result in a hidden folder
        with _sigint_deferred():
            if self.target.exists():
                if _exchange(self.path, self.target):  # one atomic swap where the OS has it
                    old = self.path
                else:
                    if old.exists():
                        shutil.rmtree(old)
                    self.target.rename(old)
                    self.path.rename(self.target)
            else:
                self.path.rename(self.target)
            self.committed = True
            self._unlock()
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
        return self.target

    def abort(self) -> None:
        """Drop the staging folder and release the lock; the target stays as it was.

        If the staging folder holds a file named in ``preserve_on_abort`` (by default the
        journal, ``journal.sqlite``: the record of a paper/live run's orders and fills), the
        folder is not deleted but renamed to ``<target>.interrupted-<UTC time>`` beside the
        target (``kept``), with a warning: never mixed into the target, never lost.
        """
        if not self.committed and self.path.exists():
            if any((self.path / name).exists() for name in self.preserve_on_abort):
                import time

                stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
                kept = self.target.parent / f"{self.target.name}.interrupted-{stamp}"
                try:
                    self.path.rename(kept)
                    self.kept = kept
                    logger.warning("the run did not complete; its journal is kept in %s", kept)
                except OSError as exc:
                    logger.warning("the run did not complete; its journal is in %s (%s)",
                                   self.path, exc)
            else:
                shutil.rmtree(self.path, ignore_errors=True)
        self._unlock()

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the OS or
    the file system cannot, and the caller falls back to two renames."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def is_result_folder(path: Path) -> bool:
    """True when ``path`` is a folder that is empty or holds an earlier tradebot result."""
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return not names or MARKER in names or set(_LEGACY_RESULT) <= names


def claim_output(target: str | Path) -> OutputDir:
    """Check, lock and stage the results folder ``target`` before a run starts.

    Raises:
        ConfigError: ``target`` is a file, a folder of other files, not creatable or writable,
            or another live run holds it (the message names the path and what to do).
    """
    out = OutputDir(Path(target).expanduser().absolute())
    try:
        out._open()
    except BaseException:  # Ctrl-C while claiming: no staging folder or lock left behind
        out.abort()
        raise
    return out


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Block SIGINT in the main thread for the block (a Ctrl-C is delivered right after)."""
    import signal
    import threading

    if (not hasattr(signal, "pthread_sigmask")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def check_output_file(out: str | Path, inputs: tuple[str | Path, ...] = (),
                      what: str = "--out") -> Path:
    """Check a single output file before the work starts: not a folder, its folder creatable
    and writable, and not one of ``inputs`` (the same file however it is spelled).

    Raises:
        ConfigError: naming the path and what to do.
    """
    p = Path(out).expanduser()
    for src in inputs:
        s = Path(src).expanduser()
        same = (s.exists() and p.exists() and s.samefile(p)) or (
            s.resolve() == p.resolve())
        if same:
            raise ConfigError(f"{what} {p} is the input file {s}; writing it would destroy the "
                              "input: choose another output file")
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a folder; give a file name, e.g. {p / 'out.csv'}")
    _check_creatable(p.absolute(), what)
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{what} {p} is read-only; choose another output file")
    _probe(p.absolute(), what)
    return p


def check_output_folder(out: str | Path, what: str = "--out") -> Path:
    """Check a folder that a command will write into (and keep, e.g. ``train``'s weights or a
    resumable sweep) before the work: not a file, creatable, writable. No lock, no staging: use
    ``claim_output`` for a results folder that a run replaces.

    Raises:
        ConfigError: naming the path and what to do.
    """
    p = Path(out).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what} {p} is a file; give a folder")
    _check_creatable(p, what)
    _probe(p / "probe" if p.is_dir() else p, what)  # a file in it, or beside it
    return p


def _probe(p: Path, what: str) -> None:
    """Create and delete a file beside ``p``: the only sure test that it can be written (root
    passes every permission check, a read-only mount or /proc still refuses)."""
    parent = next((a for a in p.parents if a.exists()), None)
    if parent is None or parent != p.parent:
        return  # the folder does not exist yet: _check_creatable vetted its existing ancestor
    probe = parent / f".{p.name}.probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise ConfigError(f"{what} {p}: cannot write in {parent} ({exc.strerror}); choose "
                          "another output file or fix the permissions") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()


def replace_file(out: Path, write: Any) -> Path:
    """Write a file atomically: ``write(tmp_path)`` then rename over ``out`` (no half file is
    ever seen at ``out``; on an exception the temporary file is removed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        write(tmp)
        tmp.replace(out)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return out


TRADE_COLUMNS = (
    "strategy", "side", "entry_time", "entry_price", "exit_time", "exit_price", "qty", "pnl",
    "fees", "exit_reason", "ambiguous", "entry_seq", "exit_seq",
)


def _iso(ns: int) -> str:
    import numpy as np

    return str(np.datetime64(int(ns), "ns").astype("datetime64[s]")).replace("T", " ")


def all_metrics(accounts: dict[str, Account], store: BarStore) -> dict[str, dict[str, Any]]:
    import numpy as np

    from engine.metrics import compute_metrics

    close = store.column("close")
    out = {}
    for name, a in accounts.items():
        cash, qty = a.state_per_bar(close.shape[0])
        out[name] = compute_metrics(
            cash + qty * close, a.trades, initial_cash=a.initial_cash, tf_ns=store.tf_ns,
            fees_paid=a.fees_paid, exposed_bars=int(np.count_nonzero(qty)),
        )
    return out


def write_results(
    out_dir: Path, config: RunConfig, accounts: dict[str, Account], store: BarStore,
    metrics: dict[str, dict[str, Any]],
) -> list[Path]:
    """Write config.resolved.yaml, metrics.json, trades.csv and equity.csv, and with
    ``output.report`` the comparison (CSV, text), report.html and equity.png; return the paths.

    Times are bar **open** times (UTC) of the bar in which the fill happened, the CSV convention.
    ``out_dir`` is normally ``OutputDir.path`` (the staging folder of a claimed output).
    """
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"config_hash": config.config_hash(), **config.resolved_dict()}
    p_cfg = out_dir / "config.resolved.yaml"
    p_cfg.write_text(yaml.safe_dump(resolved, sort_keys=False))
    p_met = out_dir / "metrics.json"
    p_met.write_text(json.dumps(
        {k: {m: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for m, v in d.items()} for k, d in metrics.items()}, indent=2))
    ts_open = store.raw_column("ts_open_ns")
    p_tr = out_dir / "trades.csv"
    with p_tr.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRADE_COLUMNS)
        for name, a in accounts.items():
            for t in a.trades:
                w.writerow([
                    name, t.side, _iso(ts_open[t.entry_seq]), repr(t.entry_price),
                    _iso(ts_open[t.exit_seq]), repr(t.exit_price), repr(t.qty),
                    f"{t.pnl:.6f}", f"{t.fees:.6f}", t.exit_reason, int(t.ambiguous),
                    t.entry_seq, t.exit_seq,
                ])
    p_eq = out_dir / "equity.csv"
    n = store.count
    close = store.column("close")
    cols = {name: a.equity_curve(close) for name, a in accounts.items()}
    with p_eq.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", *cols])
        for i in range(n):
            w.writerow([_iso(ts_open[i]), *(f"{c[i]:.4f}" for c in cols.values())])
    paths = [p_cfg, p_met, p_tr, p_eq]
    if config.output.report:
        from engine.report import write_comparison, write_report

        paths += write_comparison(out_dir, metrics)
        title = f"{config.name}: {store.symbol} {store.timeframe}, {n:,} bars"
        paths += write_report(out_dir, title, ts_open[:n].astype("datetime64[ns]"), cols,
                              metrics)
    return paths


def table(metrics: dict[str, dict[str, Any]]) -> str:
    from engine.metrics import format_table

    return format_table(metrics)
