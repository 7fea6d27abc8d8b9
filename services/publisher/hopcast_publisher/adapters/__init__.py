"""Where the publisher touches the world: its database (SQL), token encryption and the
social platforms."""
