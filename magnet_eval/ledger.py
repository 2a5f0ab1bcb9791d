"""The results ledger: every evaluate / compare appends its metric rows to one SQLite table.

Why: a checkpoint's scores drift as a model repository evolves; the ledger keeps every
measurement (value, interval, which checkpoint by name and content hash, when, at which git
commit of the code) so `magnet-eval compare --history NAME` can list a checkpoint's history.
Stored in SQLite through pandas (`DataFrame.to_sql` / `read_sql_query`): one file, no server,
safe for concurrent appends (SQLite locking).
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import sqlite3
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LedgerError, MagnetEvalError
from .paths import cache_dir

if TYPE_CHECKING:
    import pandas as pd

TABLE = "results"
LEDGER_COLUMNS: dict[str, str] = {
    "timestamp": "TEXT",        # UTC, ISO 8601
    "run_id": "TEXT",           # rows appended together share it
    "kind": "TEXT",             # evaluate | compare | compare-diff | ...
    "checkpoint": "TEXT",       # a name (checkpoint path, preset, hub name or system name)
    "checkpoint_hash": "TEXT",  # sha256 prefix of the checkpoint file(s); '' when unknown
    "system": "TEXT",
    "metric": "TEXT",
    "value": "REAL",
    "ci_low": "REAL",
    "ci_high": "REAL",
    "status": "TEXT",
    "n_generated": "INTEGER",
    "n_reference": "INTEGER",
    "embedder": "TEXT",
    "reference": "TEXT",
    "baseline": "TEXT",         # compare rows: what it was compared against
    "source": "TEXT",           # results file the rows came from
    "git_commit": "TEXT",
    "host": "TEXT",
}


def default_ledger_path() -> Path:
    """`~/.cache/magnet-eval/ledger.sqlite` (or under $MAGNET_EVAL_CACHE)."""
    return cache_dir() / "ledger.sqlite"


def git_commit(cwd: str | Path | None = None) -> str:
    """The current commit of the code (this package's repository, else `cwd`), '' when not in git."""
    for where in ([cwd] if cwd else []) + [Path(__file__).resolve().parent]:
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=str(where), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return ""


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def checkpoint_hash(path: str | Path, length: int = 16) -> str:
    """A content hash (sha256 prefix) of a checkpoint file, or of the weight files of a folder.

    A folder (audiocraft export, hub snapshot) hashes its `*.bin/*.pt/*.th/*.safetensors/*.ckpt`
    files in name order. '' when the path does not exist (a preset or hub name).
    """
    p = Path(path)
    if p.is_file():
        files = [p]
    elif p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".bin", ".pt", ".th", ".safetensors", ".ckpt"))
        if not files:
            return ""
    else:
        return ""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _HASH_CACHE:
            fh = hashlib.sha256()
            with open(f, "rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 22), b""):
                    fh.update(chunk)
            _HASH_CACHE[key] = fh.hexdigest()
        h.update(f.name.encode() + b"\0" + _HASH_CACHE[key].encode())
    return h.hexdigest()[:length]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _float(x: Any) -> float:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f


class Ledger:
    """An append-only table of metric rows in a SQLite file."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path else default_ledger_path()
        self.check_integrity()
        if self.path.is_file() and self.path.stat().st_size > 0 and not self._writable():
            return  # a read-only ledger can still be read; append() refuses with a clear message
        self.check_appendable()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            cols = ", ".join(f'"{c}" {t}' for c, t in LEDGER_COLUMNS.items())
            self._run(con, f"CREATE TABLE IF NOT EXISTS {TABLE} ({cols})")
            have = {r[1] for r in self._run(con, f"PRAGMA table_info({TABLE})")}
            for c, t in LEDGER_COLUMNS.items():  # a ledger written by an older version gains new columns
                if c not in have:
                    self._run(con, f'ALTER TABLE {TABLE} ADD COLUMN "{c}" {t}')

    # -- integrity: checked before anything is appended ------------------------------------

    def _writable(self) -> bool:
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK | os.X_OK)

    def check_integrity(self) -> None:
        """Raise LedgerError when the file exists but is not a sound SQLite ledger (never append to it)."""
        p = self.path
        if not p.exists():
            return
        if not p.is_file():
            raise LedgerError(f"results ledger {p}: is not a file (a folder?); pass --ledger FILE or --no-ledger")
        if not os.access(p, os.R_OK):
            raise LedgerError(f"results ledger {p}: is not readable (permission denied)")
        if p.stat().st_size == 0:
            return  # sqlite3.connect made it; the table is created below
        with open(p, "rb") as f:
            magic = f.read(16)
        if magic != b"SQLite format 3\x00":
            raise LedgerError(f"results ledger {p}: is not an SQLite database (corrupt or another file); "
                              "nothing was appended. Move it away or pass --ledger / --no-ledger")
        try:
            from urllib.parse import quote

            con = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True, timeout=30)
            try:
                verdict = con.execute("PRAGMA quick_check").fetchone()
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                cols = {r[1] for r in con.execute(f"PRAGMA table_info({TABLE})")} if TABLE in tables else set()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise LedgerError(f"results ledger {p}: is corrupt ({exc}); nothing was appended. "
                              "Move it away or pass --ledger / --no-ledger") from exc
        if not verdict or verdict[0] != "ok":
            raise LedgerError(f"results ledger {p}: fails SQLite's integrity check ({verdict[0] if verdict else '?'}); "
                              "nothing was appended")
        if tables and TABLE not in tables:
            raise LedgerError(f"results ledger {p}: is an SQLite file without a '{TABLE}' table (another database?)")
        if TABLE in tables and not {"system", "metric", "value"} <= cols:
            raise LedgerError(f"results ledger {p}: its '{TABLE}' table lacks the system/metric/value columns")

    def check_appendable(self) -> None:
        """Raise LedgerError unless rows can be appended: sound file, writable file and folder (SQLite's journal)."""
        from .validate import writable_output

        self.check_integrity()
        try:
            writable_output(self.path, "results ledger")
        except MagnetEvalError as exc:
            raise LedgerError(f"{exc}; pass --ledger FILE elsewhere or --no-ledger") from None
        if self.path.exists() and not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise LedgerError(f"results ledger {self.path}: its folder is read-only (SQLite needs to write a journal "
                              "beside it); pass --ledger FILE elsewhere or --no-ledger")

    def _run(self, con: sqlite3.Connection, sql: str, *params: Any) -> sqlite3.Cursor:
        try:
            return con.execute(sql, *params)
        except sqlite3.Error as exc:
            raise LedgerError(f"results ledger {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(str(self.path), timeout=30)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the results ledger {self.path}: {exc}") from exc

    def _query(self, sql: str, params: Any = None) -> "pd.DataFrame":
        import pandas as pd

        self.check_integrity()
        try:
            with self._connect() as con:
                return pd.read_sql_query(sql, con, params=params)
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            raise LedgerError(f"results ledger {self.path}: cannot be read ({exc})") from exc

    def append(
        self,
        results: "pd.DataFrame",
        *,
        kind: str,
        checkpoint: str | None = None,
        checkpoint_hash: str = "",
        baseline: str = "",
        source: str | Path | None = None,
        run_id: str | None = None,
    ) -> int:
        """Append the rows of a results DataFrame (agreed schema); returns how many were written.

        checkpoint: the name to list the history under (default: each row's system).
        """
        import pandas as pd

        if results is None or len(results) == 0:
            return 0
        missing = [c for c in ("system", "metric", "value") if c not in results.columns]
        if missing:
            raise MagnetEvalError(f"results for the ledger lack columns {missing}")
        run_id = run_id or uuid.uuid4().hex[:12]
        stamp, commit, host = _now(), git_commit(), socket.gethostname()
        rows = []
        for r in results.to_dict("records"):
            rows.append({
                "timestamp": stamp, "run_id": run_id, "kind": kind,
                "checkpoint": str(checkpoint) if checkpoint else str(r.get("system", "")),
                "checkpoint_hash": checkpoint_hash or "",
                "system": str(r.get("system", "")), "metric": str(r.get("metric", "")),
                "value": _float(r.get("value")), "ci_low": _float(r.get("ci_low")), "ci_high": _float(r.get("ci_high")),
                "status": str(r.get("status", "ok")),
                "n_generated": int(_float(r.get("n_generated")) if math.isfinite(_float(r.get("n_generated"))) else 0),
                "n_reference": int(_float(r.get("n_reference")) if math.isfinite(_float(r.get("n_reference"))) else 0),
                "embedder": str(r.get("embedder", "") or ""), "reference": str(r.get("reference", "") or ""),
                "baseline": baseline or "", "source": str(source) if source else "",
                "git_commit": commit, "host": host,
            })
        frame = pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))
        self.check_appendable()  # never append to a malformed or read-only ledger
        try:
            with self._connect() as con:
                frame.to_sql(TABLE, con, if_exists="append", index=False)
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            raise LedgerError(f"results ledger {self.path}: cannot append ({exc})") from exc
        return len(frame)

    def read(self) -> "pd.DataFrame":
        """Every row, oldest first."""
        return self._query(f"SELECT rowid AS row, * FROM {TABLE} ORDER BY timestamp, rowid")

    def history(self, name: str, metric: str | None = None) -> "pd.DataFrame":
        """Rows of one checkpoint, oldest first: matched by checkpoint name, system name or hash prefix."""
        query = (f"SELECT rowid AS row, * FROM {TABLE} WHERE (checkpoint = ? OR system = ? "
                 f"OR (checkpoint_hash != '' AND checkpoint_hash LIKE ?))")
        params: list[Any] = [name, name, name + "%"]
        if metric:
            query += " AND metric = ?"
            params.append(metric)
        return self._query(query + " ORDER BY timestamp, rowid", params)

    def names(self) -> "pd.DataFrame":
        """Known checkpoints: name, hash, number of runs and rows, last seen."""
        return self._query(
            f"SELECT checkpoint, checkpoint_hash, COUNT(DISTINCT run_id) AS runs, COUNT(*) AS rows, "
            f"MAX(timestamp) AS last_seen FROM {TABLE} GROUP BY checkpoint, checkpoint_hash ORDER BY last_seen")


def record_results(
    results: "pd.DataFrame",
    *,
    kind: str = "evaluate",
    checkpoint: str | None = None,
    checkpoint_path: str | Path | None = None,
    source: str | Path | None = None,
    ledger: str | Path | Ledger | None = None,
) -> int:
    """Append an evaluate run to the ledger (what `evaluate` calls after saving its results).

    checkpoint_path: a checkpoint file/folder to hash; its path is also the default name.
    """
    led = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    digest = checkpoint_hash(checkpoint_path) if checkpoint_path else ""
    name = checkpoint or (str(checkpoint_path) if checkpoint_path else None)
    return led.append(results, kind=kind, checkpoint=name, checkpoint_hash=digest, source=source)


__all__ = ["Ledger", "record_results", "checkpoint_hash", "git_commit", "default_ledger_path", "LEDGER_COLUMNS"]
