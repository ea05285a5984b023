"""Start-up objects are kept out of the collector's way."""

from __future__ import annotations

import gc

from openfunction.heap import freeze_startup_objects


def test_objects_alive_at_startup_are_frozen_and_new_ones_are_not():
    try:
        before = object()
        assert freeze_startup_objects() > 0
        frozen = gc.get_freeze_count()
        made_later = [object() for _ in range(10)]
        assert gc.get_freeze_count() == frozen
        assert made_later and before is not None
    finally:
        gc.unfreeze()
