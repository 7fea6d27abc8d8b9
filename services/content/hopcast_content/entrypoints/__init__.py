"""How the world reaches content besides Kafka: HTTP reads and the CLI."""
