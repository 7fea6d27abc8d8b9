"""`python -m hopcast_content`: run the content service."""

from hopcast_content.bootstrap import definition
from hopcast_shared.service import serve

if __name__ == "__main__":
    serve(definition())
