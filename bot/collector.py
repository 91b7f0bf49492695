"""Python's cyclic garbage collector during a send, while matching, and in the compose workers.

A send keeps many objects alive from start to end (subscribers, papers, scores, jobs) and makes
many more that live for one message. With Python's default thresholds the collector looks at
the young objects every 700 new ones and, every so often, walks everything alive again; on a
send to 10,000 subscribers that was about a tenth of the CPU of the sending process and of each
composing worker. So while a run lasts (``quiet``), the objects alive at its start are left out
of the collector's passes (``gc.freeze``), and the young ones are looked at every ``YOUNG`` new
ones. Matching, and parsing a profiles file, make a great many small objects that hold no
cycles; while they run (``paused``) the collector does not run at all, and the objects they
made are then left out too, for as long as the run lasts (or, outside a run, moved to the
oldest generation at once).

Reference counting still frees at once everything that is not in a cycle; cycles are collected
as before, only less often, and everything frozen goes back to the collector when the last run
ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG = 10_000
"""New objects between two looks at the young ones, while a run lasts (Python's default: 700)."""


class _Collector:
    """Runs in progress in this process: the first one in quiets the collector, the last one out
    gives it back its thresholds and the frozen objects (runs may overlap, on one event loop or
    in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0
        self._thresholds = gc.get_threshold()

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """While a run lasts; see the module docstring."""
        with self._lock:
            if not self._runs:
                self._thresholds = gc.get_threshold()
                quiet_for_good()
            self._runs += 1
        try:
            yield
        finally:
            with self._lock:
                self._runs -= 1
                if not self._runs:
                    gc.set_threshold(*self._thresholds)
                    gc.unfreeze()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """While many small objects without cycles are made; see the module docstring."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was_enabled:
                with self._lock:
                    gc.freeze()
                    if not self._runs:
                        gc.unfreeze()
                gc.enable()


_collector = _Collector()
quiet_collector = _collector.quiet
paused_collector = _collector.paused


def quiet_for_good() -> None:
    """Leave the objects alive now out of the collector's passes and look at the young ones
    less often, for the rest of the process's life (a worker, once it is set up). The young
    garbage is collected first, so that none of it is left alone with them."""
    gc.collect(1)
    gc.freeze()
    _, *older = gc.get_threshold()
    gc.set_threshold(YOUNG, *older)
