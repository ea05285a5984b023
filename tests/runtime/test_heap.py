"""Start-up objects are kept out of the collector's way."""

from __future__ import annotations

import gc

from openfunction.heap import freeze_startup_objects


def test_objects_alive_at_startup_leave_the_collected_generations():
    made_before = [1]
    try:
        assert freeze_startup_objects() > 0
        made_after = [2]
        tracked = gc.get_objects()  # generations 0-2; frozen objects are not in them
        assert not any(o is made_before for o in tracked)
        assert any(o is made_after for o in tracked)
    finally:
        gc.unfreeze()
