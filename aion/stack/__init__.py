"""The embedded local stack: real servers as child processes, data under AION_HOME."""
