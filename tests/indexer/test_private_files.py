"""Private files: created 0600, and an open SQLite database's locks survive a second open in one process."""

import sqlite3
import stat
import subprocess
import sys

from indexer.private_files import touch_private

READ_BACK = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT n FROM t').fetchone()[0])"


def test_a_missing_file_is_created_private_and_an_existing_one_made_private(tmp_path):
    made = touch_private(tmp_path / "new.sqlite")
    assert stat.S_IMODE(made.stat().st_mode) == 0o600 and made.read_bytes() == b""
    loose = tmp_path / "loose.sqlite"
    loose.write_bytes(b"kept")
    loose.chmod(0o644)
    assert stat.S_IMODE(touch_private(loose).stat().st_mode) == 0o600 and loose.read_bytes() == b"kept"


def test_touching_an_open_wal_database_keeps_this_process_commits_visible_to_others(tmp_path):
    """The outbox bug: a second store opened in the server dropped the first one's SQLite locks; the
    receiver-side reader then took itself for the last connection and deleted the live WAL."""
    path = touch_private(tmp_path / "db.sqlite")
    live = sqlite3.connect(path, isolation_level=None)
    live.execute("PRAGMA journal_mode = WAL")
    live.execute("CREATE TABLE t (n INTEGER)")
    live.execute("INSERT INTO t VALUES (1)")
    touch_private(path)  # another store of the same index, in this process
    read = [sys.executable, "-c", READ_BACK, str(path)]
    assert subprocess.run(read, capture_output=True, text=True, check=True).stdout.strip() == "1"
    live.execute("UPDATE t SET n = 2")  # committed (autocommit) after the other process closed
    assert subprocess.run(read, capture_output=True, text=True, check=True).stdout.strip() == "2"
    assert (tmp_path / "db.sqlite-wal").exists()
    live.close()
