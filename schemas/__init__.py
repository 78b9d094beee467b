"""Avro schemas, the topic catalogue, the registry codec and request validation."""
