"""Composition root: settings, the CLI, the local stack launcher, telemetry set-up."""
