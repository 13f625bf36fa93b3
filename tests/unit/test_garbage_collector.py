"""`serve` turns the cyclic GC off for its start-up; `tune_garbage_collector` turns it back on."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from addon_core.serving import tune_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("restored_gc")
def test_collection_is_on_again_with_the_start_up_frozen() -> None:
    gc.disable()
    survivor: list[object] = []
    survivor.append(survivor)  # a cycle alive at start-up

    tune_garbage_collector()

    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == 20_000
