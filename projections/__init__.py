"""Read-model builders: Postgres projections with transactional Kafka checkpoints."""
