"""Entry point of `aion worker`: the Faust worker with every stream agent registered."""

from __future__ import annotations

import logging

import faust

from aion import telemetry
from aion.settings import Settings
from streams import command_processor, orchestrator_timer
from streams.app import StreamsApp


class JsonLogWorker(faust.Worker):
    """Faust's worker, its log lines JSON with the correlation ids like every other role's.

    Faust installs its own handlers when it starts (replacing them silenced the worker once);
    only their formatter is swapped, after Faust has set them up.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        for handler in logger.handlers:
            handler.setFormatter(telemetry.JsonFormatter("worker"))


def build(settings: Settings) -> StreamsApp:
    streams = StreamsApp(settings)
    command_processor.register(streams)
    orchestrator_timer.register(streams)
    return streams


def run(settings: Settings) -> None:
    streams = build(settings)
    streams.declare_changelogs()
    telemetry.quiet_noisy_loggers()
    worker = JsonLogWorker(streams.app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
