"""The image's HEALTHCHECK: GET /health of this container's service (no curl in a slim image).

The service is HOPCAST_SERVICE; its port is <SERVICE>_HTTP_PORT. Exit 0 when /health
answers 200 within three seconds, 1 otherwise.
"""

import os
import sys
import urllib.request

service = os.environ.get("HOPCAST_SERVICE", "")
port = os.environ.get(f"{service.upper()}_HTTP_PORT", "")
path = sys.argv[1] if len(sys.argv) > 1 else "/health"
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:
    print(f"{service} {path}: {exc}", file=sys.stderr)
    sys.exit(1)
