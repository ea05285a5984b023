"""What both providers share (tags, baggage, carriers) and how their configuration is checked."""

from __future__ import annotations

import json

import pytest

from openfunction.cli import main
from openfunction.config import Exporter, parse_function_context
from openfunction.errors import ConfigError
from openfunction.invocation import HTTP, Invocation
from openfunction.tracing.common import TraceSettings, expand_baggage, failure
from openfunction.tracing.opentelemetry import make_exporter
from openfunction.tracing.skywalking import parse_oap_server


def config(tracing: dict, env: dict | None = None, **extra):
    ctx = {"name": "fn", "version": "v1", "runtime": "Async", "pluginsTracing": tracing, **extra}
    return parse_function_context(json.dumps(ctx), env or {"POD_NAME": "fn-abc",
                                                           "POD_NAMESPACE": "prod"})


SW = {"enabled": True, "provider": {"name": "skywalking", "oapServer": "oap:11800"},
      "tags": {"func": "other", "instance": "x", "tag1": "v1"}}


def test_func_instance_and_namespace_tags_win_over_configured_ones():
    settings = TraceSettings.from_config(config(SW))
    assert dict(settings.tags) == {"layer": "faas", "func": "fn", "instance": "fn-abc",
                                   "namespace": "prod", "tag1": "v1"}
    assert (settings.service, settings.instance, settings.runtime) == ("fn", "fn-abc", "Async")


@pytest.mark.parametrize("value", ["a2V5:dmFsdWU=,bad", "!!!:???", "a2V5:/w=="])
def test_an_undecodable_sw8_correlation_entry_stops_start_up(value):
    with pytest.raises(ConfigError) as info:
        expand_baggage({"key": "sw8-correlation", "value": value},
                       "FUNC_CONTEXT.tracing.baggage")
    text = str(info.value)
    assert text.startswith("FUNC_CONTEXT.tracing.baggage.value has an invalid entry")
    assert "dGVuYW50:YWNtZQ==" in text


def test_baggage_in_header_form_is_decoded():
    assert expand_baggage({"key": "sw8-correlation", "value": "a2V5:dmFsdWU=,eA==:eQ=="}) == {
        "key": "value", "x": "y"}
    assert expand_baggage({"key": "baggage", "value": "a=1,b=two%20words;prop"}) == {
        "a": "1", "b": "two words"}
    assert expand_baggage({"CONSUMER_KEY": "of"}) == {"CONSUMER_KEY": "of"}


def test_failure():
    inv = Invocation(config(SW), HTTP)
    assert failure(inv) is None
    inv.status_code = 502
    assert "502" in failure(inv)
    inv.error = KeyError("k")
    assert failure(inv) == "KeyError: 'k'"


@pytest.mark.parametrize("value, problem", [
    ("", "is missing"),
    ("http://oap:11800", "without a scheme"),
    ("oap", "host:port"),
    ("oap:port", "port must be a number"),
    ("oap:70000", "port must be a number"),
    ("a:1,b:2", "one address"),
])
def test_malformed_oap_server_is_refused(value, problem):
    with pytest.raises(ConfigError) as info:
        parse_oap_server(value, {})
    text = str(info.value)
    assert "FUNC_CONTEXT.pluginsTracing.provider.oapServer" in text and problem in text


def test_oap_server_falls_back_to_the_agent_env():
    assert parse_oap_server("", {"SW_AGENT_COLLECTOR_BACKEND_SERVICES": "oap:11800"}) == "oap:11800"
    assert parse_oap_server(" oap.sw.svc:11800 ", {}) == "oap.sw.svc:11800"


def test_cli_stops_with_the_message_for_a_bad_oap_server(tmp_path, monkeypatch, capsys):
    (tmp_path / "main.py").write_text("def f(request):\n    return 'x'\n")
    ctx = {"name": "fn", "runtime": "Knative", "pluginsTracing": {
        "enabled": True, "provider": {"name": "skywalking", "oapServer": "oap"}}}
    monkeypatch.setenv("FUNC_CONTEXT", json.dumps(ctx))
    monkeypatch.setenv("CONTEXT_MODE", "self-host")
    monkeypatch.delenv("SW_AGENT_COLLECTOR_BACKEND_SERVICES", raising=False)
    code = main(["--source", str(tmp_path / "main.py"), "--target", "f", "--dry-run"])
    assert code == 2
    err = capsys.readouterr().err
    assert "FUNC_CONTEXT.pluginsTracing.provider.oapServer is invalid: 'oap'" in err


def test_otlp_exporter_endpoint_order():
    _, where = make_exporter(Exporter(endpoint="collector:4317"), "oap:11800", {})
    assert where == "OTLP/gRPC http://collector:4317"
    _, where = make_exporter(None, "oap:11800", {})
    assert where == "OTLP/gRPC http://oap:11800"
    _, where = make_exporter(None, "", {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317"})
    assert where == "OTLP/gRPC https://c:4317"


@pytest.mark.parametrize("exporter, message", [
    (None, "exporter.endpoint is missing"),
    (Exporter(name="zipkin", endpoint="z:9411"), "exporter.name is invalid"),
    (Exporter(endpoint="c:4317", protocol="udp"), "exporter.protocol is invalid"),
    (Exporter(endpoint="c:4317", timeout="soon"), "exporter.timeout is invalid"),
    (Exporter(endpoint="c:4317", headers="novalue"), "exporter.headers is invalid"),
    (Exporter(endpoint="c:4317", compression="brotli"), "exporter.compression is invalid"),
])
def test_bad_exporter_settings_are_refused(exporter, message):
    with pytest.raises(ConfigError) as info:
        make_exporter(exporter, "", {})
    assert f"FUNC_CONTEXT.pluginsTracing.provider.{message}" in str(info.value)


def test_exporter_options_are_read():
    exporter, _ = make_exporter(Exporter(endpoint="c:4317", headers="api-key=s%20x",
                                         timeout="500ms", compression="gzip"), "", {})
    assert exporter._timeout == 0.5
    assert ("api-key", "s x") in tuple(exporter._headers)


def test_scan_headers_reads_the_host_and_the_wanted_headers_in_one_pass():
    from openfunction.tracing.common import scan_headers

    scope = {"headers": [(b"host", b"fn.test"), (b"traceparent", b"00-x"), (b"accept", b"*/*")]}
    assert scan_headers(scope, frozenset({b"traceparent", b"baggage"})) == (
        b"fn.test", {"traceparent": "00-x"})
    assert scan_headers(scope, frozenset({b"baggage"})) == (b"fn.test", None)
    assert scan_headers(scope, None) == (b"fn.test", {"traceparent": "00-x", "accept": "*/*"})


@pytest.mark.parametrize("exporter, oap, where", [
    (Exporter(endpoint="ftp://x:1"), "", "FUNC_CONTEXT.pluginsTracing.provider.exporter.endpoint"),
    (None, "grpc://oap:11800", "FUNC_CONTEXT.pluginsTracing.provider.oapServer"),
])
def test_an_otlp_endpoint_with_another_scheme_is_refused(exporter, oap, where):
    with pytest.raises(ConfigError) as info:
        make_exporter(exporter, oap, {})
    assert str(info.value).startswith(f"{where} is invalid")
