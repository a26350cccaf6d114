"""A persistent verdict cache: SQLite in WAL mode, one row per (judge identity, images, order, seed).

The key is the SHA-256 of the judge's identity (backend, model, prompt version, sampling settings — never a key or
a URL's credentials) and the content hashes of the three images *in the order shown*, plus the seed. Each verdict is
committed as it arrives, so an interrupted run resumes where it stopped and rerunning the same judgments makes zero
model calls. Transport failures (no answer after retries, malformed responses) are not stored: a rerun asks again.
Stored texts are capped (:data:`vlic.judges.vlm_api.MAX_ANSWER_CHARS`; a 5 MB answer is not kept twice) and pass
through :func:`vlic.judges.vlm_api.redact` (no bearer token or URL credentials reach the file).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from vlic.judges.base import Query, Verdict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    identity TEXT NOT NULL,
    seed INTEGER NOT NULL,
    rating INTEGER,
    failure TEXT,
    failure_kind TEXT,
    text TEXT,
    rationale TEXT,
    latency_s REAL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    cost_usd REAL,
    scores TEXT,
    created REAL NOT NULL
)
"""


def identity_digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def verdict_key(identity: dict[str, Any], query: Query) -> str:
    return hashlib.sha256((identity_digest(identity) + query.content_key()).encode()).hexdigest()


class VerdictCache:
    """``path=None`` gives an in-memory cache (tests, one-off CLI calls)."""

    def __init__(self, path: str | Path | None):
        self.path = None if path in (None, "", ":memory:") else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False, timeout=30)
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise RuntimeError(f"verdict cache '{path}' is not a usable SQLite database ({e})") from None
        self.hits = 0
        self.writes = 0

    def get(self, key: str) -> Verdict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT rating, failure, failure_kind, text, rationale, latency_s, tokens_in, tokens_out, cost_usd, scores "
                "FROM verdicts WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        self.hits += 1
        rating, failure, kind, text, rat, lat, tin, tout, cost, scores = row
        return Verdict(
            rating=rating, failure=failure, failure_kind=kind, text=text or "", rationale=rat or "",
            latency_s=lat or 0.0, tokens_in=tin, tokens_out=tout, cost_usd=cost,
            scores=tuple(json.loads(scores)) if scores else (), cached=True,
        )

    def put(self, key: str, verdict: Verdict, judge: str, identity: dict[str, Any], seed: int) -> bool:
        """Store (and commit) ``verdict``; transport/request failures are not stored. Returns whether it was."""
        from vlic.judges.vlm_api import cap, redact

        if verdict.failure_kind in ("transport", "error"):
            return False
        text = cap(redact(verdict.text or ""))
        why = cap(redact(verdict.rationale or ""))
        failure = cap(redact(verdict.failure), 1000) if verdict.failure else verdict.failure
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key, judge, json.dumps(identity, sort_keys=True, default=str), int(seed), verdict.rating,
                    failure, verdict.failure_kind, text, why, verdict.latency_s,
                    verdict.tokens_in, verdict.tokens_out, verdict.cost_usd,
                    json.dumps(list(verdict.scores)) if verdict.scores else None, time.time(),
                ),
            )
            self._db.commit()
        self.writes += 1
        return True

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def count(self, judge: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM verdicts WHERE judge = ?", (judge,)).fetchone()[0])

    def judges(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT judge FROM verdicts ORDER BY judge")]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "VerdictCache":
        return self

    def __exit__(self, *exc: Iterable) -> None:
        self.close()
