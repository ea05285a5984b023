"""`ctx.states` over Dapr (the connection recorded)."""

import asyncio

import pytest

from dapr_doubles import RecordingConnection, run
from openfunction.config import Component, FunctionConfig
from openfunction.context import PayloadError
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


class CountingConnection(RecordingConnection):
    """Fails the test if a call with bad arguments reaches the sidecar."""

    async def get_state(self, store, key):
        assert isinstance(key, str) and key, f"the sidecar was asked for key {key!r}"
        return await super().get_state(store, key)

    async def save_state(self, store, key, value):
        assert isinstance(key, str) and key, f"the sidecar was asked to save key {key!r}"
        return await super().save_state(store, key, value)

    async def delete_state(self, store, key):
        assert isinstance(key, str) and key, f"the sidecar was asked to delete key {key!r}"
        return await super().delete_state(store, key)


BAD_KEYS = [
    (5, TypeError, r"key must be a non-empty str, not int \(5\)"),
    (None, TypeError, r"key must be a non-empty str, not NoneType \(None\)"),
    (b"k", TypeError, r"key must be a non-empty str, not bytes"),
    ("", ValueError, r"key is empty; Dapr state keys are non-empty str"),
]


@pytest.mark.parametrize("key,error,message", BAD_KEYS, ids=["int", "None", "bytes", "empty"])
@pytest.mark.parametrize("call", ["get", "save", "delete"])
def test_keys_are_non_empty_str(call, key, error, message):
    stores = DaprStateStores(CONFIG, CountingConnection())
    args = ("cache", key, "v") if call == "save" else ("cache", key)
    with pytest.raises(error, match=rf"ctx\.states\.{call}\(\): {message}"):
        run(getattr(stores, call)(*args))


@pytest.mark.parametrize("key,error,message", BAD_KEYS, ids=["int", "None", "bytes", "empty"])
def test_blocking_forms_check_keys_in_the_worker_thread(key, error, message):
    async def main():
        loop = asyncio.get_running_loop()
        stores = DaprStateStores(CONFIG, CountingConnection(), loop=lambda: loop)

        def worker():
            for call, args in (("get_blocking", ("cache", key)),
                               ("save_blocking", ("cache", key, "v")),
                               ("delete_blocking", ("cache", key))):
                with pytest.raises(error, match=rf"ctx\.states\.{call}\(\): {message}"):
                    getattr(stores, call)(*args)

        await loop.run_in_executor(None, worker)

    run(main())


def test_store_must_be_a_name():
    stores = DaprStateStores(CONFIG, CountingConnection())
    with pytest.raises(TypeError, match=r"ctx\.states\.get\(\): store must be the name of a "
                                        r"state store in FUNC_CONTEXT\.states \(a str\), not list"):
        run(stores.get(["cache"], "k"))


@pytest.mark.parametrize("value,reason", [
    ({"v": float("nan"), "w": float("inf")}, "Out of range float values are not JSON compliant"),
    ({"tags": {"a"}}, "Object of type set is not JSON serializable"),
    ("\ud800", r"'\ud800', a lone surrogate"),
])
def test_values_that_cannot_be_saved_are_a_clear_error(value, reason):
    connection = CountingConnection()
    stores = DaprStateStores(CONFIG, connection)
    with pytest.raises(PayloadError) as info:
        run(stores.save("cache", "k", value))
    assert info.value.title.startswith("the data for key 'k' of state store 'cache' cannot be sent")
    assert reason in info.value.detail
    assert "finite float" in info.value.hint
    assert connection.state == {}
