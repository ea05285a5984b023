import json

import pytest

from openfunction.config import Runtime, load_config, parse_function_context
from openfunction.errors import ConfigError

K8S = {"POD_NAME": "hello-pod", "POD_NAMESPACE": "default"}


def parse(doc, env=K8S):
    return parse_function_context(json.dumps(doc) if not isinstance(doc, str) else doc, env)


def test_no_func_context_runs_locally_as_knative():
    config = load_config({})
    assert config.runtime is Runtime.KNATIVE
    assert config.port == 8080
    assert config.http_pattern == "/"
    assert config.mode == "self-host"
    assert not config.from_func_context
    assert config.inputs == {} and config.outputs == {}


def test_v1beta1_full_shape():
    config = parse({
        "name": "sink", "version": "v1", "runtime": "Async", "port": "50002",
        "inputs": {"cron": {"componentName": "cron-input", "componentType": "bindings.cron"}},
        "outputs": {
            "sink": {"componentName": "redis-out", "componentType": "bindings.redis",
                     "operation": "create", "metadata": {"key": "k"}},
            "topic": {"componentName": "msg", "componentType": "pubsub.redis", "uri": "t1"},
        },
        "states": {"store": {"componentName": "redis-state", "componentType": "state.redis"}},
        "prePlugins": ["logger"], "postPlugins": ["counter"],
    })
    assert config.name == "sink" and config.version == "v1"
    assert config.runtime is Runtime.ASYNC and config.port == 50002
    cron = config.inputs["cron"]
    assert cron.is_binding and cron.uri == "cron-input" and cron.target == "cron-input"
    assert config.outputs["sink"].operation == "create"
    assert dict(config.outputs["sink"].metadata) == {"key": "k"}
    assert config.outputs["topic"].is_pubsub and config.outputs["topic"].topic == "t1"
    assert config.states["store"].building_block == "state"
    assert config.pre_plugins == ("logger",) and config.post_plugins == ("counter",)
    assert config.pod_name == "hello-pod" and config.mode == "kubernetes"


def test_port_as_number_and_http_pattern():
    config = parse({"name": "f", "runtime": "Knative", "port": 9000, "httpPattern": "/hello/{name}"})
    assert config.port == 9000 and config.http_pattern == "/hello/{name}"


def test_runtime_is_case_insensitive():
    assert parse({"name": "f", "runtime": "knative"}).runtime is Runtime.KNATIVE


def test_v1beta2_triggers_shape():
    config = parse({
        "name": "fn", "version": "v2",
        "triggers": {"http": {"port": 8081},
                     "dapr": [{"name": "kafka-server", "type": "pubsub.kafka", "topic": "sample-topic"},
                              {"name": "cron", "type": "bindings.cron"}]},
        "outputs": {"out": {"componentName": "o", "componentType": "pubsub.kafka", "topic": "t2"}},
        "preHooks": ["logger"], "postHooks": ["counter"],
        "tracing": {"enabled": True, "provider": {"name": "skywalking", "oapServer": "oap:11800"},
                    "tags": {"func": "fn"}, "baggage": {"key": "v"}},
    })
    assert config.runtime is Runtime.ASYNC and config.port == 8081
    assert config.inputs["kafka-server"].topic == "sample-topic"
    assert config.inputs["kafka-server"].is_pubsub
    assert config.inputs["cron"].is_binding and config.inputs["cron"].uri == "cron"
    assert config.outputs["out"].topic == "t2"
    assert config.pre_plugins == ("logger", "skywalking")
    assert config.post_plugins == ("skywalking", "counter")
    assert config.tracing_provider == "skywalking"
    assert dict(config.tracing.baggage) == {"key": "v"}


def test_v1beta2_without_dapr_triggers_is_knative():
    assert parse({"name": "fn", "triggers": {"http": {"port": 8080}}}).runtime is Runtime.KNATIVE


def test_tracing_provider_registered_like_go():
    config = parse({"name": "f", "runtime": "Knative", "prePlugins": ["a"], "postPlugins": ["b"],
                    "pluginsTracing": {"enabled": True,
                                       "provider": {"name": "opentelemetry", "oapServer": "x:4317"}}})
    assert config.pre_plugins == ("a", "opentelemetry")
    assert config.post_plugins == ("opentelemetry", "b")


def test_tracing_provider_already_listed_is_not_added_again():
    config = parse({"name": "f", "runtime": "Knative", "prePlugins": ["skywalking", "a"],
                    "postPlugins": ["a", "skywalking"],
                    "pluginsTracing": {"enabled": True, "provider": {"name": "skywalking"}}})
    assert config.pre_plugins == ("skywalking", "a")
    assert config.post_plugins == ("a", "skywalking")


def test_tracing_disabled_adds_nothing():
    config = parse({"name": "f", "runtime": "Knative",
                    "pluginsTracing": {"enabled": False, "provider": {"name": "skywalking"}}})
    assert config.pre_plugins == () and not config.tracing_enabled


def test_dapr_endpoint_from_env():
    config = parse_function_context('{"name":"f","runtime":"Async"}',
                                    {**K8S, "DAPR_HOST": "10.0.0.1", "DAPR_GRPC_PORT": "50010"})
    assert config.dapr.grpc_address == "10.0.0.1:50010"
    assert load_config({}).dapr.grpc_address == "127.0.0.1:50001"


@pytest.mark.parametrize(
    "doc, field_name",
    [
        ('{"name": ', "not valid JSON"),
        ("[1, 2]", "FUNC_CONTEXT has the wrong type"),
        ({"name": 1, "runtime": "Knative"}, "FUNC_CONTEXT.name has the wrong type"),
        ({"name": "f"}, "FUNC_CONTEXT.runtime is missing"),
        ({"name": "f", "runtime": "Lambda"}, "FUNC_CONTEXT.runtime is invalid"),
        ({"name": "f", "runtime": "Knative", "port": "http"}, "FUNC_CONTEXT.port is invalid"),
        ({"name": "f", "runtime": "Knative", "port": [1]}, "FUNC_CONTEXT.port has the wrong type"),
        ({"name": "f", "runtime": "Knative", "httpPattern": "hello"}, "FUNC_CONTEXT.httpPattern is invalid"),
        ({"name": "f", "runtime": "Knative", "inputs": []}, "FUNC_CONTEXT.inputs has the wrong type"),
        ({"name": "f", "runtime": "Async", "inputs": {"i": {"componentName": "c"}}},
         "FUNC_CONTEXT.inputs.i.componentType is missing"),
        ({"name": "f", "runtime": "Async", "inputs": {"i": {"componentType": "kafka"}}},
         "FUNC_CONTEXT.inputs.i.componentType is invalid"),
        ({"name": "f", "runtime": "Async", "outputs": {"o": {"componentType": "state.redis"}}},
         "FUNC_CONTEXT.outputs.o.componentType is invalid"),
        ({"name": "f", "runtime": "Async", "outputs": {"o": {"componentType": "bindings.redis",
                                                              "metadata": {"k": 1}}}},
         "FUNC_CONTEXT.outputs.o.metadata.k has the wrong type"),
        ({"name": "f", "runtime": "Knative", "prePlugins": "logger"},
         "FUNC_CONTEXT.prePlugins has the wrong type"),
        ({"name": "f", "runtime": "Knative", "pluginsTracing": {"enabled": "yes"}},
         "FUNC_CONTEXT.pluginsTracing.enabled has the wrong type"),
        ({"name": "f", "runtime": "Knative", "pluginsTracing": {"enabled": True}},
         "FUNC_CONTEXT.pluginsTracing.provider is missing"),
        ({"name": "f", "runtime": "Knative",
          "pluginsTracing": {"enabled": True, "provider": {"name": "zipkin"}}},
         "FUNC_CONTEXT.pluginsTracing.provider.name is invalid"),
        ({"name": "f", "triggers": {"dapr": [{"type": "bindings.cron"}]}},
         "FUNC_CONTEXT.triggers.dapr[0].name has the wrong type"),
        ("[" * 100_000, "nested too deeply"),
        ({"name": "f", "runtime": "Knative", "outputs": {"o": {"componentName": "mq",
                                                                "componentType": "pubsub.mqtt3"}}},
         "FUNC_CONTEXT.outputs.o.uri is missing"),
        ({"name": "f", "runtime": "Knative", "port": "\u00b2"}, "FUNC_CONTEXT.port is invalid"),
        ({"name": "f", "runtime": "Knative", "httpPattern": "/{x:badconv}"},
         "FUNC_CONTEXT.httpPattern is invalid: '/{x:badconv}'"),
        ({"name": "f", "runtime": "Knative", "httpPattern": "/{a}/{a}"},
         "FUNC_CONTEXT.httpPattern is invalid"),
        # the v1beta2 shape: errors name its fields
        ({"name": "f", "triggers": {}, "tracing": {"enabled": True}},
         "FUNC_CONTEXT.tracing.provider is missing"),
        ({"name": "f", "triggers": {}, "tracing": {"enabled": True, "provider": {"name": "x"}}},
         "FUNC_CONTEXT.tracing.provider.name is invalid"),
        ({"name": "f", "triggers": {}, "preHooks": "logger"}, "FUNC_CONTEXT.preHooks has the wrong"),
        ({"name": "f", "triggers": {}, "prePlugins": "logger"},
         "FUNC_CONTEXT.prePlugins has the wrong"),
    ],
)
def test_errors_name_the_field(doc, field_name):
    with pytest.raises(ConfigError) as info:
        parse(doc)
    text = str(info.value)
    assert field_name in text
    assert "fix:" in text


def test_kubernetes_mode_needs_pod_name():
    with pytest.raises(ConfigError) as info:
        parse({"name": "f", "runtime": "Knative"}, env={})
    assert "POD_NAME is not set" in str(info.value)
    assert "CONTEXT_MODE=self-host" in str(info.value)


def test_self_host_mode_needs_no_pod():
    config = parse({"name": "f", "runtime": "Knative"}, env={"CONTEXT_MODE": "self-host"})
    assert config.mode == "self-host" and config.pod_name == ""


def test_v1beta2_fields_are_remembered_for_errors():
    config = parse({"name": "f", "triggers": {}, "postHooks": ["logger"],
                    "tracing": {"enabled": False}})
    assert (config.pre_field, config.post_field) == ("prePlugins", "postHooks")
    assert config.tracing.where("provider") == "FUNC_CONTEXT.tracing.provider"
    v1 = parse({"name": "f", "runtime": "Knative", "pluginsTracing": {"enabled": False}})
    assert (v1.pre_field, v1.post_field) == ("prePlugins", "postPlugins")
    assert v1.tracing.where() == "FUNC_CONTEXT.pluginsTracing"


@pytest.mark.parametrize("mode", ["selfhost", "Self-Host", "local"])
def test_an_unknown_context_mode_is_named(mode):
    with pytest.raises(ConfigError) as info:
        parse({"name": "f", "runtime": "Knative"}, env={**K8S, "CONTEXT_MODE": mode})
    text = str(info.value)
    assert f"CONTEXT_MODE is invalid: {mode!r}" in text and "CONTEXT_MODE=self-host" in text


def test_kubernetes_context_mode_may_be_written_out():
    assert parse({"name": "f", "runtime": "Knative"},
                 env={**K8S, "CONTEXT_MODE": "kubernetes"}).mode == "kubernetes"


def test_bad_dapr_port_env():
    with pytest.raises(ConfigError, match="DAPR_GRPC_PORT is invalid"):
        load_config({"DAPR_GRPC_PORT": "abc"})
