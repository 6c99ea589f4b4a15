#!/bin/sh
# HEALTHCHECK of the mcrd image: GET $MCRD_HEALTH_URL (default http://127.0.0.1:8080/healthz, the API on
# api.listen). Healthy on 200; the 503 answer names the reasons. The slim image has no curl: Python does the request.
set -eu
url="${MCRD_HEALTH_URL:-http://127.0.0.1:8080/healthz}"
exec python3 -c '
import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=4) as answer:
        print(answer.read(300).decode(errors="replace"))
except urllib.error.HTTPError as exc:
    body = exc.read(300).decode(errors="replace")
    print("unhealthy (%d): %s" % (exc.code, body))
    sys.exit(1)
except OSError as exc:
    print("unhealthy: %s" % exc)
    sys.exit(1)
' "$url"
