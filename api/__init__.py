"""The Starlette HTTP API: commands in, read models out, problem+json errors."""
