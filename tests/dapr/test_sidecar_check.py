"""What FUNC_CONTEXT expects of the sidecar against the sidecar's metadata."""

from openfunction.config import parse_function_context
from openfunction.dapr.sidecar_check import mismatches

CONFIG = parse_function_context(
    '{"name": "f", "runtime": "Async", '
    '"inputs": {"ticks": {"componentName": "cron", "componentType": "bindings.cron"}}, '
    '"outputs": {"out": {"componentName": "mq", "componentType": "pubsub.mqtt3", "uri": "t"}}, '
    '"states": {"kv": {"componentName": "store", "componentType": "state.redis"}}}',
    {"CONTEXT_MODE": "self-host"},
)


def metadata(*components, protocol="grpc"):
    return {"components": [{"name": n, "type": t, "version": "v1"} for n, t in components],
            "appConnectionProperties": {"port": 50055, "protocol": protocol}}


def test_a_sidecar_with_every_component_has_no_mismatch():
    meta = metadata(("cron", "bindings.cron"), ("mq", "pubsub.mqtt3"), ("store", "state.redis"))
    assert mismatches(CONFIG, meta, "grpc") == []


def test_missing_components_are_named_by_their_field():
    problems = mismatches(CONFIG, metadata(("store", "state.redis")), "grpc")
    assert problems == [
        "FUNC_CONTEXT.inputs.ticks names the component 'cron', which the Dapr sidecar has not "
        "loaded (it has: store); no event will arrive from it: fix componentName, or the "
        "component's metadata.name",
        "FUNC_CONTEXT.outputs.out names the component 'mq', which the Dapr sidecar has not "
        "loaded (it has: store); using it will fail: fix componentName, or the component's "
        "metadata.name",
    ]


def test_a_component_of_another_building_block_is_named():
    meta = metadata(("cron", "pubsub.redis"), ("mq", "pubsub.mqtt3"), ("store", "state.redis"))
    assert mismatches(CONFIG, meta, "grpc") == [
        "FUNC_CONTEXT.inputs.ticks is a bindings.cron component, but the sidecar's 'cron' is "
        "pubsub.redis: fix componentType"]


def test_a_protocol_mismatch_is_named():
    meta = metadata(("cron", "bindings.cron"), ("mq", "pubsub.mqtt3"), ("store", "state.redis"),
                    protocol="http")
    assert mismatches(CONFIG, meta, "grpc") == [
        "the function serves Dapr's app callbacks over grpc, but the sidecar calls the app over "
        "http: set APP_PROTOCOL=http, or daprd's --app-protocol grpc"]


def test_metadata_without_those_fields_is_not_a_mismatch():
    assert mismatches(parse_function_context('{"name": "f", "runtime": "Knative"}',
                                             {"CONTEXT_MODE": "self-host"}), {}, "grpc") == []
