"""The Dapr services of a function: its output sender and state stores.

`openfunction.cli.make_services` calls `dapr_services(config)` once at start-up when the
function has inputs, outputs or states. Nothing connects here: the connection to the
sidecar is opened on first use (or by the Async runtime once the sidecar is ready).
"""

from __future__ import annotations

import os
from typing import Mapping

from openfunction.config import FunctionConfig
from openfunction.context import Services
from openfunction.dapr.connection import DaprConnection, DaprSettings
from openfunction.dapr.sender import DaprSender
from openfunction.dapr.states import DaprStateStores


def dapr_services(config: FunctionConfig, environ: Mapping[str, str] | None = None) -> Services:
    settings = DaprSettings.from_env(config.dapr, os.environ if environ is None else environ)
    connection = DaprConnection(settings)
    services = Services(sender=DaprSender(config, connection))
    if config.states:
        services.states = DaprStateStores(config, connection, loop=lambda: services.loop)
    return services


def dapr_connection(services: Services) -> DaprConnection | None:
    """The connection behind `services`, when they are Dapr services."""
    sender = services.sender
    return sender.connection if isinstance(sender, DaprSender) else None
