"""`mcrd lg`: the looking glass from a terminal, through the daemon's HTTP API.

    mcrd lg sessions
    mcrd lg bfd
    mcrd lg routes [--protocol BGP|STATIC|CONNECTED|LOCAL] [--ip ADDRESS|PREFIX]
    mcrd lg bgp [--ip ADDRESS|PREFIX]
    mcrd lg neighbor SESSION received|advertised [--filtered] [--ip ADDRESS|PREFIX]

Tables by default, `--json` for scripts (the `data` of the API's answer). `--api URL` (or `MCRD_API`) points at a
daemon, default http://127.0.0.1:8080; `--uid` names the MCR (default: the one the daemon plays, from
`GET /v2/product/mcr2`). Synchronous and standard library only (plus tabulate): a command line needs no event loop.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from mcrd.lg.views import PROTOCOLS

DEFAULT_API = "http://127.0.0.1:8080"
API_ENV = "MCRD_API"
TIMEOUT = 10.0
BASE = "/v2/product/mcr2"
EXIT_OK, EXIT_FAILED = 0, 1


class ClientError(Exception):
    """One line that says what went wrong."""


# --- arguments ---------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the `lg` views on `parser`. The common options are accepted before and after the view's name."""
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common)
    _add_common(parser)
    views = parser.add_subparsers(dest="lg_view", required=True, metavar="VIEW")
    views.add_parser("sessions", parents=[common], help="BGP sessions: status, uptime, prefixes in and out",
                     description="Every BGP connection of the MCR (GET .../lookingGlass/bgpSessions).")
    views.add_parser("bfd", parents=[common], help="BFD sessions: state, diagnostics, negotiated timers",
                     description="Every BFD session, for connections with bfdEnabled (GET .../lookingGlass/"
                     "bfdSessions, an mcrd extension).")
    routes = views.add_parser("routes", parents=[common], help="the IP routing table",
                              description="Best BGP routes, static routes, connected subnets and the MCR's own "
                              "addresses (GET .../lookingGlass/routes).")
    routes.add_argument("--protocol", type=str.upper, choices=PROTOCOLS, help="only routes of this protocol")
    _add_ip(routes)
    bgp = views.add_parser("bgp", parents=[common], help="the BGP table: every path, best and not",
                           description="Every path of the BGP table (GET .../lookingGlass/bgp).")
    _add_ip(bgp)
    neighbor = views.add_parser("neighbor", parents=[common], help="routes received from or advertised to a peer",
                                description="The routes of one BGP session (GET .../bgpSessions/SESSION/received "
                                "or .../advertised).")
    neighbor.add_argument("session", metavar="SESSION", help="the session id: the peer's address")
    neighbor.add_argument("direction", choices=["received", "advertised"])
    neighbor.add_argument("--filtered", action="store_true",
                          help="received routes that import policy rejected, each with the rule that rejected it")
    _add_ip(neighbor)


def _add_common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: an option given before the view's name is not reset by the view's parser.
    parser.add_argument("--api", metavar="URL", default=argparse.SUPPRESS,
                        help=f"the daemon's API (default: ${API_ENV}, else {DEFAULT_API})")
    parser.add_argument("--uid", metavar="MCR", default=argparse.SUPPRESS,
                        help="the MCR's productName (default: the MCR the daemon plays)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the API's data as JSON instead of a table")


def _add_ip(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ip", metavar="ADDRESS|PREFIX",
                        help="an address (longest match) or a prefix (that prefix and the prefixes it covers)")


# --- running ---------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    api = getattr(args, "api", None) or os.environ.get(API_ENV) or DEFAULT_API
    client = Client(api)
    try:
        if args.lg_view == "neighbor" and args.filtered and args.direction != "received":
            raise ClientError("--filtered applies to received routes only")
        uid = getattr(args, "uid", None) or client.uid()
        path, query = _request(args, uid)
        answer = client.get(path, query)
    except ClientError as exc:
        hint = _lab_hint(str(exc), args.lg_view) if api == DEFAULT_API and not getattr(args, "api", None) else ""
        print(f"mcrd lg: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILED
    data = answer.get("data")
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2))
    else:
        print(answer.get("message", ""))
        print(render(args, data if isinstance(data, list) else []))
    return EXIT_OK


def _lab_hint(error: str, view: str) -> str:
    """Where mcrd runs when it does not answer at the default address: inside a lab's namespace, which has its own
    loopback (only said when no API was named: then the user meant this one)."""
    if "is the daemon running?" not in error:
        return ""
    from mcrd.lab.state import RUN_DIR, LabState

    try:
        states = [LabState.load(d) for d in sorted(RUN_DIR.iterdir()) if d.is_dir()]
    except OSError:
        states = []
    for state in filter(None, states):
        node = next((n for n, r in state.nodes.items() if r.role == "mcrd"), None)
        if node is not None:
            return (f"\nmcrd runs in lab {state.lab} (its own network namespace): "
                    f"mcrd lab exec {state.lab} {node} -- mcrd lg {view}")
    return ""


def _request(args: argparse.Namespace, uid: str) -> tuple[str, dict[str, str]]:
    base = f"{BASE}/{urllib.parse.quote(uid, safe='')}/lookingGlass"
    query: dict[str, str] = {}
    if getattr(args, "ip", None):
        query["ip"] = args.ip
    if args.lg_view == "sessions":
        return f"{base}/bgpSessions", query
    if args.lg_view == "bfd":
        return f"{base}/bfdSessions", query
    if args.lg_view == "routes":
        if args.protocol:
            query["protocol"] = args.protocol
        return f"{base}/routes", query
    if args.lg_view == "bgp":
        return f"{base}/bgp", query
    if args.filtered:
        query["filtered"] = "true"
    session = urllib.parse.quote(args.session, safe="")
    return f"{base}/bgpSessions/{session}/{args.direction}", query


class Client:
    """GET JSON from the API; every failure becomes a one-line `ClientError`."""

    def __init__(self, api: str, timeout: float = TIMEOUT) -> None:
        self.api = api.rstrip("/")
        self.timeout = timeout
        # No proxy: the daemon is on this host or in this lab, never behind $http_proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def uid(self) -> str:
        products = self.get(BASE).get("data")
        names = [p.get("productUid") for p in products if isinstance(p, dict)] if isinstance(products, list) else []
        if len(names) != 1 or not isinstance(names[0], str):
            raise ClientError(f"{self.api} does not name one MCR: give --uid")
        return names[0]

    def get(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        if not self.api.startswith(("http://", "https://")):
            raise ClientError(f"{self.api} is not an http:// URL")
        url = self.api + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise ClientError(_http_error(exc)) from None
        except urllib.error.URLError as exc:
            raise ClientError(self._unreachable(exc.reason)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(self._unreachable(exc)) from None
        except ValueError:  # not a URL urllib can open
            raise ClientError(f"{self.api} is not an http:// URL") from None
        answer = _json(body)
        if not isinstance(answer, dict):
            raise ClientError(f"{self.api} does not answer like mcrd (no JSON object): is it mcrd's API?")
        return answer

    def _unreachable(self, reason: object) -> str:
        if isinstance(reason, ConnectionRefusedError):
            return f"no mcrd answers at {self.api} (is the daemon running?)"
        if isinstance(reason, TimeoutError | socket.timeout):
            return f"{self.api} did not answer within {self.timeout:g} s"
        if isinstance(reason, socket.gaierror):
            return f"cannot resolve the host of {self.api}: {reason.strerror}"
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        return f"cannot reach {self.api}: {text}"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _http_error(exc: urllib.error.HTTPError) -> str:
    answer = _json(exc.read())
    message = answer.get("message") if isinstance(answer, dict) else None
    return f"{message or exc.reason} (HTTP {exc.code})"


# --- tables ------------------------------------------------------------------------------------------------------


def render(args: argparse.Namespace, rows: Sequence[Any]) -> str:
    view = args.lg_view
    if view == "sessions":
        headers = ["Session", "VXC", "Status", "Up/Down", "Peer AS", "Local AS", "In", "Out", "Rejected", "BFD",
                   "Description"]
        table = [[s["sessionId"], s["vxcName"], _status(s), _duration(s["uptime"] or s["lastStateChange"]),
                  s["neighborAsn"], s["localAsn"], s["prefixesIn"], s["prefixesOut"], s.get("prefixesRejected", ""),
                  _opt(s.get("bfdStatus")), s["description"]] for s in rows]
    elif view == "bfd":
        headers = ["Session", "VXC", "Interface", "BFD", "Remote", "Diag (local/remote)", "Tx ms", "Rx ms",
                   "Detect ms", "Changes", "Since", "BGP"]
        table = [[b["sessionId"], b["vxcName"], _opt(b["interface"]), b["status"], b["remoteStatus"],
                  f"{b['localDiagnostic']}/{b['remoteDiagnostic']}", f"{b['txInterval']:g}", f"{b['rxInterval']:g}",
                  f"{b['detectionTime']:g}", b["transitions"], _duration(b["lastStateChange"]), b["bgpStatus"]]
                 for b in rows]
    elif view == "routes":
        headers = ["Prefix", "Protocol", "Next hop", "Interface", "VXC", "AS path", "Metric", "Origin", "Age",
                   "Best"]
        table = [[r["prefix"], r["protocol"], r["nextHop"], r["interface"], r["vxcName"], _path(r["asPath"]),
                  _opt(r["metric"]), r["origin"], _duration(r["age"]), _mark(r["best"])] for r in rows]
    elif view == "bgp":
        headers = ["", "Prefix", "Next hop", "Neighbor", "AS path", "MED", "LocPrf", "Weight", "Origin", "Age",
                   "VXC", "Best because"]
        table = [[">" if r["best"] else ("*" if r["valid"] else ""), r["prefix"], r["nextHop"],
                  r["neighborIp"] or "(MCR)", _path(r["asPath"]), _opt(r["med"]), _opt(r["localPref"]),
                  _opt(r["weight"]), r["origin"], _duration(r["age"]), r["vxcName"], r.get("bestReason") or ""]
                 for r in rows]
    elif args.filtered:
        headers = ["Prefix", "Next hop", "AS path", "MED", "Origin", "Rejected by"]
        table = [[r["prefix"], r["nextHop"], _path(r["asPath"]), _opt(r["med"]), r["origin"],
                  (r.get("rejection") or {}).get("detail", "")] for r in rows]
    else:
        headers = ["Prefix", "Next hop", "AS path", "MED", "LocPrf", "Origin", "Best"]
        table = [[r["prefix"], r["nextHop"], _path(r["asPath"]), _opt(r["med"]), _opt(r["localPref"]), r["origin"],
                  _mark(r["best"])] for r in rows]
    return tabulate(table, headers=headers, tablefmt="simple", disable_numparse=True)


def _status(session: dict[str, Any]) -> str:
    reason = session.get("stateReason")
    # An UP session has a reason only when nothing can be sent to it (a family it did not negotiate).
    return f"{session['status']} ({reason})" if reason else str(session["status"])


def _path(path: Sequence[int]) -> str:
    return " ".join(map(str, path))


def _opt(value: object) -> str:
    return "" if value is None else str(value)


def _mark(best: object) -> str:
    return "*" if best else ""


def _duration(seconds: int | None) -> str:
    """`45s`, `12m03s`, `5h07m`, `3d04h`, like routers print uptimes."""
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
