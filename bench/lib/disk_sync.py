"""The floor a durable commit cannot go below on this machine's disk.

    python3 bench/lib/disk_sync.py [DIR]

Measures, in DIR (default: the current directory, so the disk the
ledger's SQLite file would be on), one at a time:

  fdatasync  300 bytes rewritten in a preallocated file, then fdatasync
  append     300 bytes appended, then fdatasync (the file grows)
  sqlite     one ledger-shaped SQLite transaction in WAL mode with
             synchronous=FULL, as the ledger writer commits a batch of one
             record, run in-process (no thread hops): the durable commit's
             own cost
  sqlite-normal  the same with synchronous=NORMAL (no sync at commit)

and prints p50, p99 and p99.9 in microseconds. Standard library only.
"""
import os
import sqlite3
import sys
import tempfile
import time

N = 2000


def pcts(ts):
    ts = sorted(ts)
    return " ".join(
        f"{name} {ts[min(len(ts) - 1, int(len(ts) * q))] * 1e6:.0f} µs"
        for name, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999))
    )


def files(d):
    fd, path = tempfile.mkstemp(dir=d, prefix="treaty-sync-")
    try:
        os.ftruncate(fd, 1 << 20)
        os.fsync(fd)
        ts = []
        for i in range(N):
            os.pwrite(fd, b"x" * 300, (i * 4096) % (1 << 20))
            t = time.perf_counter()
            os.fdatasync(fd)
            ts.append(time.perf_counter() - t)
        print(f"fdatasync      {pcts(ts)}")
        ts = []
        for i in range(N):
            os.pwrite(fd, b"x" * 300, (1 << 20) + i * 300)
            t = time.perf_counter()
            os.fdatasync(fd)
            ts.append(time.perf_counter() - t)
        print(f"append         {pcts(ts)}")
    finally:
        os.close(fd)
        os.unlink(path)


def sqlite(d):
    with tempfile.TemporaryDirectory(dir=d, prefix="treaty-sync-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "ledger.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(
            """
            CREATE TABLE ledger_head (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, hash BLOB NOT NULL);
            INSERT INTO ledger_head VALUES (1, 0, zeroblob(32));
            CREATE TABLE ledger_records (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,
                request_id TEXT NOT NULL, at_ms BIGINT NOT NULL, payload TEXT NOT NULL,
                hash BLOB NOT NULL);
            CREATE INDEX ledger_records_request ON ledger_records (request_id);
            """
        )
        payload = "x" * 900  # about a decision record's canonical JSON
        for mode in ("FULL", "NORMAL"):
            db.execute(f"PRAGMA synchronous = {mode}")
            ts = []
            for _ in range(N):
                t = time.perf_counter()
                db.execute("BEGIN IMMEDIATE")
                (seq,) = db.execute("SELECT seq FROM ledger_head WHERE id = 1").fetchone()
                db.execute(
                    "INSERT INTO ledger_records VALUES (?, 'decision', ?, 0, ?, ?)",
                    (seq + 1, f"req_{seq}", payload, b"h" * 32),
                )
                db.execute("UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1", (seq + 1, b"h" * 32))
                db.execute("COMMIT")
                ts.append(time.perf_counter() - t)
            label = "sqlite" if mode == "FULL" else "sqlite-normal"
            print(f"{label:<14} {pcts(ts)}")
        db.close()


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    files(d)
    sqlite(d)


if __name__ == "__main__":
    main()
