"""How the world reaches the publisher besides Kafka: HTTP reads and the CLI."""
