"""How the world reaches billing besides Kafka: HTTP reads and the CLI."""
