"""The write model: commands, events and pure decide/evolve functions. No I/O."""
