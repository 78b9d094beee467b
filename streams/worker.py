"""Entry point of `aion worker`: the Faust worker with every stream agent registered."""

from __future__ import annotations

import faust

from aion import telemetry
from aion.settings import Settings
from streams import command_processor, orchestrator_timer
from streams.app import StreamsApp


def build(settings: Settings) -> StreamsApp:
    streams = StreamsApp(settings)
    command_processor.register(streams)
    orchestrator_timer.register(streams)
    return streams


def run(settings: Settings) -> None:
    streams = build(settings)
    # Faust's worker sets up logging its own way (text lines); only quiet the chatty clients.
    telemetry.quiet_noisy_loggers()
    worker = faust.Worker(streams.app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
