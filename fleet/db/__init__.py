"""PostgreSQL side of the fleet: migrations, the batch writer, connections."""
