"""Two traced functions joined by an MQTT topic through their own daprd sidecars, for the
tracing tests of both providers: a Knative producer whose output is the topic, and an Async
consumer subscribed to it."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from support.dapr import Daprd, Mosquitto, mqtt_component, start_daprd, write_components
from support.process import Process, free_port, run_function

TOPIC = "orders"

PRODUCER = """
def handler(ctx, data):
    ctx.send({"order": data}, "orders")        # a def function: sends from a worker thread
    return {"sent": True}
"""

CONSUMER = """
import json, os

def handler(ctx, data):
    with open(os.environ["RECEIVED"], "a") as out:
        out.write(json.dumps(data) + "\\n")
"""


def pod(name: str) -> dict[str, str]:
    return {"POD_NAME": f"{name}-0", "POD_NAMESPACE": "test"}


@contextmanager
def producer(tmp: Path, tracing: dict, broker: Mosquitto, source: Path | None = None,
             target: str = "handler", env: dict[str, str] | None = None) -> Iterator[Process]:
    """A Knative function named `producer` whose output `orders` is the MQTT topic."""
    if source is None:
        source = tmp / "producer.py"
        source.write_text(PRODUCER)
    resources = write_components(tmp / "producer-resources",
                                 [mqtt_component("msgs", "pubsub.mqtt3", broker)])
    ctx = {"name": "producer", "version": "v1", "runtime": "Knative",
           "outputs": {"orders": {"componentName": "msgs", "componentType": "pubsub.mqtt3",
                                  "uri": TOPIC}},
           "pluginsTracing": tracing}
    # The daprd of a function that only sends needs no app: nothing listens on its app port.
    with start_daprd(resources, free_port(), app_id="producer", wait="outbound") as daprd:
        full_env = {"FUNC_CONTEXT": json.dumps(ctx), **pod("producer"), **daprd.env,
                    **(env or {})}
        with run_function(source, target, env=full_env) as fn:
            yield fn


@contextmanager
def consumer(tmp: Path, tracing: dict, broker: Mosquitto, source: Path | None = None,
             target: str = "handler", env: dict[str, str] | None = None
             ) -> Iterator[tuple[Process, Daprd, Path]]:
    """An Async function named `consumer` reading the MQTT topic; yields it, its daprd and
    the file the default handler appends what it receives to."""
    if source is None:
        source = tmp / "consumer.py"
        source.write_text(CONSUMER)
    received = tmp / "received.jsonl"
    resources = write_components(tmp / "consumer-resources",
                                 [mqtt_component("msgs", "pubsub.mqtt3", broker)])
    port = free_port()
    ctx = {"name": "consumer", "version": "v1", "runtime": "Async", "port": str(port),
           "inputs": {"in": {"componentName": "msgs", "componentType": "pubsub.mqtt3",
                             "uri": TOPIC}},
           "pluginsTracing": tracing}
    with ExitStack() as stack:
        daprd = stack.enter_context(start_daprd(resources, port, app_id="consumer",
                                                wait="outbound"))
        full_env = {"FUNC_CONTEXT": json.dumps(ctx), **pod("consumer"), **daprd.env,
                    "RECEIVED": str(received), **(env or {})}
        fn = stack.enter_context(run_function(source, target, env=full_env, port=port))
        deadline = time.monotonic() + 20
        while not daprd.metadata().get("subscriptions"):
            assert time.monotonic() < deadline, f"daprd never subscribed:\n{daprd.log}\n{fn.log}"
            time.sleep(0.1)
        time.sleep(0.3)  # the MQTT subscription reaches the broker
        yield fn, daprd, received
