"""The Faust stream processors: the command processor and dead letters."""
