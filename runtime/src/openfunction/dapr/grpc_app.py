"""Dapr's app callback API over gRPC (`grpc.aio`: every event is a task on one loop).

    ListInputBindings       the binding component of every `bindings.*` input
    ListTopicSubscriptions  (componentName, uri) of every `pubsub.*` input, with the
                            input's metadata as subscription metadata (its
                            `deadLetterTopic` as the dead-letter topic)
    OnBindingEvent          SUCCESS: empty response; RETRY: a gRPC error (daprd reports it
                            to the binding, which redelivers when it can); DROP: empty
                            response (acknowledged, with a warning)
    OnTopicEvent            TopicEventResponse status SUCCESS, RETRY or DROP (a message
                            under an MQTT wildcard subscription, `sensors/+`, comes with its
                            own topic: the dispatcher finds the input whose filter matches)
    OnBulkTopicEvent[Alpha1] one status per entry; entries run concurrently
    HealthCheck             serving (for `--enable-app-health-check`)

A call daprd cancels (a resiliency timeout) cancels its handler: the dispatcher logs the
event as not acknowledged and grpc answers nothing more. Events still running when the
grace period of shutdown ran out are cancelled by the dispatcher and answered RETRY before
the server stops, so no call is left for the ending loop to cancel.

Service invocation (`OnInvoke`) and jobs are not part of OpenFunction's Async runtime
and are answered UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
from dapr.proto.runtime.v1 import appcallback_pb2 as pb
from dapr.proto.runtime.v1 import appcallback_pb2_grpc as pb_grpc
from google.protobuf import json_format

from openfunction.dapr.dispatcher import EventDispatcher, subscription_of
from openfunction.dapr.outcome import Outcome

TopicStatus = pb.TopicEventResponse.TopicEventResponseStatus
TOPIC_STATUS = {
    Outcome.SUCCESS: TopicStatus.SUCCESS,
    Outcome.RETRY: TopicStatus.RETRY,
    Outcome.DROP: TopicStatus.DROP,
}


def _extensions(message: Any) -> dict[str, Any]:
    if message.HasField("extensions"):
        return json_format.MessageToDict(message.extensions)
    return {}


class AppCallbackService(
    pb_grpc.AppCallbackServicer,
    pb_grpc.AppCallbackAlphaServicer,
    pb_grpc.AppCallbackHealthCheckServicer,
):
    def __init__(self, dispatcher: EventDispatcher) -> None:
        self.dispatcher = dispatcher
        subscriptions = dispatcher.subscriptions
        self._bindings = pb.ListInputBindingsResponse(bindings=list(subscriptions.bindings))
        topics = []
        for (pubsub, topic), component in subscriptions.topics.items():
            metadata, dead_letter = subscription_of(component)
            topics.append(pb.TopicSubscription(pubsub_name=pubsub, topic=topic, metadata=metadata,
                                               dead_letter_topic=dead_letter))
        self._topics = pb.ListTopicSubscriptionsResponse(subscriptions=topics)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_AppCallbackServicer_to_server(self, server)
        pb_grpc.add_AppCallbackAlphaServicer_to_server(self, server)
        pb_grpc.add_AppCallbackHealthCheckServicer_to_server(self, server)

    # -------------------------------------------------------------- subscriptions

    async def ListInputBindings(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return self._bindings

    async def ListTopicSubscriptions(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return self._topics

    # -------------------------------------------------------------- events

    async def OnBindingEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        outcome, reason = await self.dispatcher.binding_event(
            request.name, request.data, request.metadata
        )
        if outcome is Outcome.RETRY:
            await context.abort(grpc.StatusCode.UNKNOWN, reason)
        return pb.BindingEventResponse()

    async def OnTopicEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        outcome, _ = await self.dispatcher.topic_event(
            request.pubsub_name, request.topic, request.data,
            id=request.id, source=request.source, type=request.type,
            spec_version=request.spec_version, data_content_type=request.data_content_type,
            path=request.path, extensions=_extensions(request),
        )
        return pb.TopicEventResponse(status=TOPIC_STATUS[outcome])

    async def OnBulkTopicEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        statuses = await asyncio.gather(*(self._bulk_entry(request, e) for e in request.entries))
        return pb.TopicEventBulkResponse(statuses=statuses)

    async def OnBulkTopicEventAlpha1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self.OnBulkTopicEvent(request, context)

    async def _bulk_entry(self, request: Any, entry: Any) -> Any:
        metadata = {**request.metadata, **entry.metadata}
        if entry.WhichOneof("event") == "cloud_event":
            event = entry.cloud_event
            outcome, _ = await self.dispatcher.topic_event(
                request.pubsub_name, request.topic, event.data,
                id=event.id or entry.entry_id, source=event.source, type=event.type,
                spec_version=event.spec_version,
                data_content_type=event.data_content_type or entry.content_type,
                path=request.path, extensions=_extensions(event), metadata=metadata,
            )
        else:
            outcome, _ = await self.dispatcher.topic_event(
                request.pubsub_name, request.topic, entry.bytes, id=entry.entry_id,
                data_content_type=entry.content_type, path=request.path, metadata=metadata,
            )
        return pb.TopicEventBulkResponseEntry(entry_id=entry.entry_id, status=TOPIC_STATUS[outcome])

    # -------------------------------------------------------------- the rest

    async def HealthCheck(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.HealthCheckResponse()

    async def OnInvoke(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "an OpenFunction Async function takes events from its inputs only")

    async def OnJobEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "jobs are not supported")

    async def OnJobEventAlpha1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "jobs are not supported")
