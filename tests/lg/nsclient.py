"""A tiny HTTP client run inside a lab namespace (`ip netns exec HUB python nsclient.py ...`), where the daemon's
API listens on 127.0.0.1. Standard library only. Prints one JSON line per answer: {"status", "headers", "body"}.

    nsclient.py METHOD URL [--token T] [--body-file F] [--until-status N [--until-text T] --timeout S]

With --until-status it repeats the request (every 20 ms) until that status (and a body holding --until-text) comes
back or the timeout passes, printing `{"polling": true}` after the first answer so that a test knows the loop runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def ask(method: str, url: str, token: str | None, body: bytes | None) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return {"status": response.status, "headers": dict(response.headers), "body": response.read().decode()}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "headers": dict(exc.headers), "body": exc.read().decode()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("method")
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--body-file")
    parser.add_argument("--until-status", type=int)
    parser.add_argument("--until-text", default="")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    body = open(args.body_file, "rb").read() if args.body_file else None  # noqa: SIM115
    answer = ask(args.method, args.url, args.token, body)
    if args.until_status is not None:
        print(json.dumps({"polling": True}), flush=True)
        deadline = time.monotonic() + args.timeout
        while (answer["status"] != args.until_status or args.until_text not in answer["body"]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.02)
            try:
                answer = ask(args.method, args.url, args.token, body)
            except OSError as exc:  # the daemon may be busy restarting something: keep asking
                answer = {"status": 0, "headers": {}, "body": str(exc)}
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
