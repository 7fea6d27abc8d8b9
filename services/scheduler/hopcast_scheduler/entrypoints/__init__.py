"""How the world reaches the scheduler besides Kafka: HTTP reads and the CLI."""
