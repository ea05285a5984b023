"""`ctx.states` over Dapr (the connection recorded)."""

import asyncio

import pytest

from dapr_doubles import RecordingConnection, run
from openfunction.config import Component, FunctionConfig
from openfunction.dapr.states import DaprStateStores
from openfunction.errors import OutputError

CONFIG = FunctionConfig(name="fn", states={"cache": Component("cache", "redis-state", "state.redis")})


def test_get_save_delete_use_the_component_name():
    connection = RecordingConnection()
    stores = DaprStateStores(CONFIG, connection)

    async def main():
        assert await stores.get("cache", "k") is None
        await stores.save("cache", "k", {"n": 1})
        assert connection.state == {("redis-state", "k"): b'{"n":1}'}
        assert await stores.get("cache", "k") == b'{"n":1}'
        await stores.delete("cache", "k")
        assert await stores.get("cache", "k") is None

    run(main())


def test_unknown_store_names_the_known_ones():
    stores = DaprStateStores(CONFIG, RecordingConnection())
    with pytest.raises(OutputError, match="unknown state store 'other'") as info:
        run(stores.get("other", "k"))
    assert "cache" in str(info.value)


def test_blocking_forms_from_a_worker_thread():
    async def main():
        loop = asyncio.get_running_loop()
        stores = DaprStateStores(CONFIG, RecordingConnection(), loop=lambda: loop)

        def worker():
            stores.save_blocking("cache", "k", "v")
            value = stores.get_blocking("cache", "k")
            stores.delete_blocking("cache", "k")
            return value, stores.get_blocking("cache", "k")

        assert await loop.run_in_executor(None, worker) == (b"v", None)
        with pytest.raises(RuntimeError, match="await ctx.states"):
            stores.get_blocking("cache", "k")

    run(main())
