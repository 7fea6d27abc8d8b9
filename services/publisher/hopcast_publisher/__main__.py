"""`python -m hopcast_publisher`: run the publisher service."""

from hopcast_publisher.bootstrap import definition
from hopcast_shared.service import serve

if __name__ == "__main__":
    serve(definition())
