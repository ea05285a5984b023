"""Fixtures for the tracing tests: in-process functions with fake outputs, and OpenTelemetry's
in-memory exporter installed as the process's tracer provider."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from openfunction.app import FunctionApp
from openfunction.config import parse_function_context
from openfunction.context import OutgoingMessage, Services
from openfunction.loader import load_function
from openfunction.plugins import build_pipeline
from openfunction.runner import FunctionRunner


class RecordingSender:
    """Stands in for the Dapr sender: keeps every message (with the metadata plugins added)."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage, invocation: Any) -> bytes | None:
        self.sent.append(message)
        return None


@dataclass
class LocalFunction:
    client: TestClient
    runner: FunctionRunner
    sender: RecordingSender
    config: Any


@pytest.fixture(scope="module")
def broker():
    """A real Mosquitto on 127.0.0.1, for the tests of traces across Dapr."""
    from support.dapr import start_mosquitto

    with start_mosquitto() as running:
        yield running


@pytest.fixture(scope="session")
def otel_exporter():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(otel_exporter):
    otel_exporter.clear()
    yield otel_exporter
    otel_exporter.clear()


@pytest.fixture
def make_function(tmp_path):
    """Build the real app in-process from source text and a FUNC_CONTEXT (dict)."""
    opened: list[tuple[TestClient, FunctionRunner, Any]] = []

    def factory(source: str, target: str, func_context: dict, env: dict | None = None):
        path = tmp_path / f"{target}.py"
        path.write_text(textwrap.dedent(source))
        environ = {"CONTEXT_MODE": "self-host", **(env or {})}
        config = parse_function_context(json.dumps(func_context), environ)
        loaded = load_function(path, target, None, config.runtime)
        pipeline = build_pipeline(config, tmp_path)
        sender = RecordingSender()
        services = Services(sender=sender)
        runner = FunctionRunner(loaded, pipeline, services)

        async def bind_loop() -> None:
            import asyncio

            services.loop = asyncio.get_running_loop()

        async def close() -> None:
            await pipeline.close()
            runner.close()

        app = FunctionApp(config, runner, on_startup=[bind_loop], on_shutdown=[close])
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append((client, runner, pipeline))
        return LocalFunction(client, runner, sender, config)

    yield factory
    for client, _, _ in opened:
        client.__exit__(None, None, None)
