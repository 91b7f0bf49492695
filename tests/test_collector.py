"""The garbage collector while a run lasts (bot.collector)."""

from __future__ import annotations

import gc
import weakref
from contextlib import ExitStack

from bot.collector import YOUNG, paused_collector, quiet_collector


class Node:
    """Something that can be part of a reference cycle."""

    other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A reference cycle nothing else refers to; only the collector can free it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_a_run_leaves_the_objects_alive_at_its_start_alone_and_gives_them_back() -> None:
    before = gc.get_threshold()
    with quiet_collector():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG, *before[1:])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_cycles_are_still_collected_before_during_and_after_a_run() -> None:
    garbage = cycle()
    alive = Node()
    alive.other = Node()
    alive.other.other = alive
    older = weakref.ref(alive)
    with quiet_collector():
        assert garbage() is None, "garbage is collected before the rest is left alone"
        del alive
        newer = cycle()
        gc.collect()
        assert newer() is None, "a cycle made during the run is collected"
        assert older() is not None, "a cycle alive at the start is left alone"
    gc.collect()
    assert older() is None, "and collected once the run has ended"


def test_overlapping_runs_give_the_collector_back_when_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first, second = ExitStack(), ExitStack()
    first.enter_context(quiet_collector())
    second.enter_context(quiet_collector())
    first.close()  # the first run ends while the second goes on
    assert gc.get_threshold()[0] == YOUNG and gc.get_freeze_count() > 0
    second.close()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_pause_stops_the_collector_and_leaves_what_it_made_alone_while_a_run_lasts() -> None:
    with paused_collector():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0, "outside a run, nothing stays frozen"
    with quiet_collector():
        frozen = gc.get_freeze_count()
        with paused_collector():
            made = cycle()
        assert gc.isenabled() and gc.get_freeze_count() > frozen, "the run stays quiet"
        gc.collect()
        assert made() is not None
    gc.collect()
    assert made() is None and gc.get_freeze_count() == 0
