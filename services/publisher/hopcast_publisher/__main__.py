"""`python -m hopcast_publisher`: run the publisher service."""

import gc

from hopcast_publisher.bootstrap import definition
from hopcast_shared.service import serve

if __name__ == "__main__":
    service = definition()
    # What is imported and built by now lives as long as the process: keep it out of the
    # collector's full passes, which a publishing batch's short-lived objects would otherwise
    # set off over and over, each scanning all of it (bench/README.md, publisher).
    gc.collect()
    gc.freeze()
    serve(service)
