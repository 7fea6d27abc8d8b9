"""`python -m hopcast_billing`: run the billing service."""

from hopcast_billing.bootstrap import definition
from hopcast_shared.service import serve

if __name__ == "__main__":
    serve(definition())
