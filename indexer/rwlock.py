"""A readers-writer lock: many searches at once, or one writer alone; a waiting writer goes next.

Why not a plain lock: FAISS, numpy and the embedding model release the GIL, so two searches
in one worker overlap on two cores, while one lock held across each search serialised them.
Why by hand: the standard library has none, and the PyPI ones are either unmaintained or
bring more than these thirty lines. Not re-entrant: a holder must not ask again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold it with other readers; waits while a writer holds it or waits for it (writers never starve)."""
        with self._changed:
            while self._writing or self._writers_waiting:
                self._changed.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                self._readers -= 1
                if not self._readers:
                    self._changed.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold it alone: waits for the readers inside to leave, and lets no new one in meanwhile."""
        with self._changed:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._changed.wait()
            finally:
                self._writers_waiting -= 1
                self._changed.notify_all()  # readers held back for us may go in if we gave up waiting
            self._writing = True
        try:
            yield
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()
