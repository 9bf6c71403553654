"""The readers-writer lock behind IndexService: readers together, writers alone, waiting writers first."""

import threading
import time

from indexer.rwlock import ReadWriteLock

WAIT = 0.3  # long enough for a thread that could get in to get in


def _hold(lock_cm, entered: threading.Event, release: threading.Event) -> threading.Thread:
    def run() -> None:
        with lock_cm():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_readers_share_it():
    lock = ReadWriteLock()
    first, second, release = threading.Event(), threading.Event(), threading.Event()
    a = _hold(lock.shared, first, release)
    assert first.wait(5)
    b = _hold(lock.shared, second, release)
    assert second.wait(WAIT), "a second reader waited for the first"
    release.set()
    a.join(5), b.join(5)


def test_a_writer_waits_for_readers_and_holds_it_alone():
    lock = ReadWriteLock()
    reading, writing, release_reader, release_writer = (threading.Event() for _ in range(4))
    reader = _hold(lock.shared, reading, release_reader)
    assert reading.wait(5)
    writer = _hold(lock.exclusive, writing, release_writer)
    assert not writing.wait(WAIT), "the writer got in beside a reader"
    release_reader.set()
    assert writing.wait(5)
    late_reader = threading.Event()
    late = _hold(lock.shared, late_reader, threading.Event())
    assert not late_reader.wait(WAIT), "a reader got in beside the writer"
    release_writer.set()
    assert late_reader.wait(5)
    reader.join(5), writer.join(5)
    late.join(0)


def test_a_waiting_writer_goes_before_readers_that_come_after_it():
    lock = ReadWriteLock()
    order: list[str] = []
    reading, release_reader = threading.Event(), threading.Event()
    reader = _hold(lock.shared, reading, release_reader)
    assert reading.wait(5)

    def enter(hold, name: str) -> None:
        with hold():
            order.append(name)

    writer = threading.Thread(target=enter, args=(lock.exclusive, "writer"))
    writer.start()
    time.sleep(WAIT)  # the writer is waiting now
    newcomer = threading.Thread(target=enter, args=(lock.shared, "reader"))
    newcomer.start()
    time.sleep(WAIT)
    assert order == [], "someone got in beside the first reader"
    release_reader.set()
    writer.join(5), newcomer.join(5), reader.join(5)
    assert order == ["writer", "reader"]


def test_an_error_inside_releases_it():
    lock = ReadWriteLock()
    for hold in (lock.shared, lock.exclusive):
        try:
            with hold():
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    done = threading.Event()
    thread = threading.Thread(target=lambda: (lock.exclusive().__enter__(), done.set()), daemon=True)
    thread.start()
    assert done.wait(5), "the lock stayed held after an error"
