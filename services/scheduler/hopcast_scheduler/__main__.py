"""`python -m hopcast_scheduler`: run the scheduler service."""

from hopcast_scheduler.bootstrap import definition
from hopcast_shared.service import serve

if __name__ == "__main__":
    serve(definition())
