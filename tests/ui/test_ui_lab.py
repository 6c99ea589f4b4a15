"""The looking glass web page in a real headless browser (Debian's chromium, driven by playwright) against a running
daemon with real BGP peers: the topology of tests/lg/test_lg_lab.py (AWS on FRR with an Import Permit List, Azure on
BIRD with an Export Permit List, a static route), built by its own `_build`.

The daemon's API listens on 127.0.0.1:8080 inside the hub's namespace, so the browser runs there: playwright talks to
chromium over a pipe (`--remote-debugging-pipe`), which `ip netns exec` passes through, so nothing listens outside
the namespace. One browser for the module (the machine is shared). Every expected value is checked against the
peers' own RIBs; screenshots go to a temporary directory (or `MCRD_SCREENSHOTS`, e.g. `docs/` to refresh the
README's picture).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import poll
from tests.lg.test_lg_lab import (
    API,
    AWS_AS,
    AWS_IP,
    AWS_REJECTED,
    AZURE_AS,
    AZURE_IP,
    HUB_AWS,
    MCR_AS,
    STATIC,
    TIMEOUT,
    TOKEN,
    VNET,
    VNET_SUBNET,
    VPCS,
    Topo,
    _build,
)

pytestmark = LAB_MARKS

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = TIMEOUT * 1000
# A table's rows as the page shows them: {data-field: text} per row (the "no rows" placeholder has no field).
ROWS_JS = """table => [...document.querySelectorAll(`#${table} tbody tr`)]
  .map(tr => Object.fromEntries([...tr.cells].filter(td => td.dataset.field).map(td => [td.dataset.field,
   td.innerText.trim()])))
  .filter(row => Object.keys(row).length)"""


@dataclass
class Browser:
    topo: Topo
    page: Any
    shots: Path
    console: list[str] = field(default_factory=list)

    def rows(self, table: str) -> list[dict[str, str]]:
        result: list[dict[str, str]] = self.page.evaluate(ROWS_JS, table)
        return result

    def column(self, table: str, name: str) -> list[str]:
        return [row[name] for row in self.rows(table)]

    def wait_rows(self, table: str, predicate: str) -> None:
        """Wait until `predicate` (JavaScript over `rows`, the table's rows) holds."""
        self.page.wait_for_function(f"table => {{ const rows = ({ROWS_JS})(table); return {predicate}; }}",
                                    arg=table, timeout=WAIT_MS)

    def tab(self, name: str) -> None:
        self.page.click(f"#tabs button[data-tab={name}]")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def ui_lab_ready() -> None:
    from tests.lab.conftest import require_lab

    require_lab()
    missing = [what for what, found in (("chromium (apt)", Path(CHROMIUM).exists()),
                                         ("playwright (pip)", _has_playwright())) if not found]
    if missing:
        message = f"the browser tests need {', '.join(missing)}: run scripts/setup"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def browser(ui_lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with module_lab("test_ui_lab", request) as lab:
        topo = _build(lab)
        # chromium started inside the hub's namespace; `exec` keeps the pipe's descriptors (3 and 4).
        wrapper = lab.make_dir("browser") / "chromium-in-hub"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {topo.hub.name} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        shots = Path(os.environ.get("MCRD_SCREENSHOTS") or tempfile.mkdtemp(prefix="mcrd-ui-shots-"))
        shots.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(wrapper), headless=True)
            try:
                page = chromium.new_page(viewport={"width": 1280, "height": 720})
                found = Browser(topo, page, shots)
                page.on("console", lambda m: found.console.append(f"{m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: found.console.append(f"pageerror: {e}"))
                page.goto(API + "/")
                page.evaluate("window.notReloaded = true")  # gone if the page reloads
                yield found
            finally:
                chromium.close()
        print(f"screenshots in {shots}")
        if not os.environ.get("MCRD_SCREENSHOTS"):
            shutil.rmtree(shots, ignore_errors=True)


def test_the_page_shows_the_mcr_and_its_sessions_as_the_peers_see_them(browser: Browser) -> None:
    page, topo = browser.page, browser.topo
    assert page.url == API + "/ui/"
    page.wait_for_selector(f"#sessions-table tr[data-session='{AZURE_IP}']", timeout=WAIT_MS)
    assert page.inner_text("#mcr-name") == "lab-mcr"
    assert page.inner_text("#mcr-asn") == str(MCR_AS)
    sessions = {row["peer"].split()[0]: row for row in browser.rows("sessions-table")}
    assert set(sessions) == {AWS_IP, AZURE_IP}
    aws, azure = sessions[AWS_IP], sessions[AZURE_IP]
    assert (aws["vxcName"], aws["peerType"], aws["neighborAsn"], aws["status"]) == (
        "aws-vxc", "PRIV_CLOUD", str(AWS_AS), "UP")
    assert "AWS hosted VIF" in aws["peer"]
    assert (azure["vxcName"], azure["peerType"], azure["neighborAsn"], azure["status"]) == (
        "azure-vxc", "PRIV_CLOUD", str(AZURE_AS), "UP")
    # The peers' own view of the sessions and of what the MCR sends them.
    assert topo.aws.session_state(HUB_AWS) == "Established"
    assert topo.azure.session_state("mcr") == "Established"
    sent_to_aws = {VNET, VNET_SUBNET, STATIC}
    # Exactly: not the 10.10/16 via Azure that the MCR announced and withdrew while both sessions came up
    # (tests/lab/test_adj_rib_out.py).
    poll(lambda: set(topo.aws.routes("ipv4", neighbor=HUB_AWS)), TIMEOUT, "AWS holds the MCR's three",
         until=lambda got: got == sent_to_aws)
    from_mcr_azure = poll(lambda: topo.azure.routes("master4", protocol="mcr"), TIMEOUT, "Azure holds one",
                          until=lambda got: len(got) == 1)
    assert aws["prefixesOut"] == str(len(sent_to_aws))
    assert azure["prefixesOut"] == str(len(from_mcr_azure))
    assert (aws["prefixesIn"], azure["prefixesIn"]) == ("2", "3")
    assert aws["uptime"].endswith("s")
    browser.shot("sessions")


def test_the_routes_tables_and_their_filters(browser: Browser) -> None:
    topo = browser.topo
    browser.tab("routes")
    browser.wait_rows("routes-table", f"rows.some(r => r.prefix === '{VNET_SUBNET}')")
    bgp = {row["prefix"]: row for row in browser.rows("routes-table") if row["protocol"] == "BGP"}
    assert sorted(bgp) == sorted([*VPCS, VNET, VNET_SUBNET])
    # Each BGP route is the one the peer that sent it holds as its own.
    aws_own = {p for p, r in topo.aws.routes("ipv4").items() if not r.source}
    azure_own = {p for p, r in topo.azure.routes("master4").items() if r.source != "mcr"}
    for prefix, row in bgp.items():
        sender, own = (AWS_IP, aws_own) if row["nextHop"] == AWS_IP else (AZURE_IP, azure_own)
        assert prefix in own, (prefix, sender)
    assert bgp[VPCS[0]]["nextHop"] == AWS_IP  # Azure's longer path to it loses
    assert {row["protocol"] for row in browser.rows("routes-table")} == {"BGP", "STATIC", "CONNECTED", "LOCAL"}

    browser.page.select_option("#routes-protocol", "STATIC")
    browser.wait_rows("routes-table", "rows.length === 1")
    assert browser.column("routes-table", "prefix") == [STATIC]
    browser.page.select_option("#routes-protocol", "")
    browser.page.fill("#routes-ip", "10.30.1.10")  # an address: the longest match only
    browser.wait_rows("routes-table", f"rows.length === 1 && rows[0].prefix === '{VNET_SUBNET}'")
    browser.shot("routes-filtered")
    browser.page.fill("#routes-ip", "")

    browser.tab("bgp")
    browser.wait_rows("bgp-table", "rows.length === 6")
    paths = [(row["prefix"], row["neighborIp"], row["best"]) for row in browser.rows("bgp-table")]
    assert (VPCS[0], AZURE_IP, "") in paths
    assert (VPCS[0], AWS_IP, "✔") in paths
    assert (STATIC, "this MCR", "✔") in paths


def test_received_advertised_and_filtered_with_the_rejection_rule(browser: Browser) -> None:
    topo, page = browser.topo, browser.page
    browser.tab("sessions")
    page.click(f"#sessions-table tr[data-session='{AWS_IP}'] button")
    browser.wait_rows("neighbor-table", "rows.length === 2")
    assert browser.column("neighbor-table", "prefix") == VPCS

    page.click("#neighbor button[data-view=advertised]")
    browser.wait_rows("neighbor-table", "rows.length === 3")
    advertised = {row["prefix"]: row["asPath"] for row in browser.rows("neighbor-table")}
    rib = topo.aws.routes("ipv4", neighbor=HUB_AWS)
    assert set(advertised) == {VNET, VNET_SUBNET, STATIC}
    for prefix, path in advertised.items():  # as AWS holds them
        assert path == " ".join(map(str, rib[prefix].as_path))

    page.click("#neighbor button[data-view=filtered]")
    browser.wait_rows("neighbor-table", "rows.length === 4")
    rejected = {row["prefix"]: row["rejection"] for row in browser.rows("neighbor-table")}
    assert rejected[AWS_REJECTED] == ("import-permit-list import permit list 'aws-vpcs' (id 1): "
                                      "no entry contains the route")
    assert rejected[STATIC] == f"as-loop AS path holds the local AS {MCR_AS} (loop)"
    assert AWS_REJECTED in topo.aws.routes("ipv4")  # AWS does send it: the MCR rejects it
    browser.shot("filtered")


def test_the_matrix_shows_who_hears_whom_and_why_not(browser: Browser) -> None:
    topo, page = browser.topo, browser.page
    browser.tab("matrix")
    cell = "#matrix-table tr[data-from='aws-vxc'] td[data-to='azure-vxc']"
    page.wait_for_selector(cell + " .count", timeout=WAIT_MS)
    assert page.inner_text(cell + " .count") == "1 / 2"  # AWS's two VPCs; Azure's Export Permit List lets one out
    assert "export-permit-list" in page.inner_text(cell)
    assert set(topo.azure.routes("master4", protocol="mcr")) == {VPCS[0]}
    back = "#matrix-table tr[data-from='azure-vxc'] td[data-to='aws-vxc']"
    assert page.inner_text(back + " .count") == "2 / 3"  # its 10.10/16 loses to AWS's own: not the best path
    assert "not-best" in page.inner_text(back)
    assert {VNET, VNET_SUBNET} <= set(topo.aws.routes("ipv4", neighbor=HUB_AWS))
    page.click(cell)
    detail = page.inner_text("#matrix-detail")
    assert f"{AWS_IP} → {AZURE_IP}: 1 of 2" in detail
    assert "export permit list 'to-azure' (id 2): no entry contains the route" in detail
    browser.shot("matrix")


def test_a_withdrawal_on_a_peer_leaves_the_page_without_a_reload(browser: Browser) -> None:
    topo, page = browser.topo, browser.page
    browser.tab("routes")
    browser.wait_rows("routes-table", f"rows.some(r => r.prefix === '{VNET_SUBNET}')")
    topo.azure.withdraw(VNET_SUBNET)
    browser.wait_rows("routes-table", f"rows.length > 0 && !rows.some(r => r.prefix === '{VNET_SUBNET}')")
    topo.aws.wait_route_gone(VNET_SUBNET, TIMEOUT)  # the MCR withdrew it from AWS too
    assert VNET_SUBNET not in topo.azure.routes("master4")
    poll(lambda: page.inner_text(f"#sessions-table tr[data-session='{AZURE_IP}'] td[data-field=prefixesIn]"),
         TIMEOUT, "Azure's session shows two prefixes in", until=lambda text: text == "2")
    browser.shot("withdrawn")
    topo.azure.announce(VNET_SUBNET)
    browser.wait_rows("routes-table", f"rows.some(r => r.prefix === '{VNET_SUBNET}')")
    topo.aws.wait_route(VNET_SUBNET, TIMEOUT)
    assert page.evaluate("window.notReloaded") is True


def test_config_is_offered_only_with_a_token(browser: Browser) -> None:
    page = browser.page
    assert page.is_visible("#config-tab")  # api.token is set in this lab
    browser.tab("config")
    assert not page.is_visible("#config-apply")
    page.fill("#token", TOKEN)
    page.wait_for_selector("#config-apply", state="visible", timeout=WAIT_MS)
    page.wait_for_function("() => document.getElementById('config-text').value.includes('lab-mcr')",
                           timeout=WAIT_MS)
    assert "aws-md5-key" not in page.input_value("#config-text")  # secrets hidden
    page.click("#config-apply")  # the running config again: applied, nothing changes
    # Functions, not expressions: the page's Content-Security-Policy forbids evaluating strings.
    page.wait_for_function("() => document.getElementById('config-result').textContent.startsWith('config applied')",
                           timeout=WAIT_MS)
    browser.tab("sessions")
    browser.wait_rows("sessions-table", "rows.length === 2 && rows.every(r => r.status === 'UP')")
    browser.shot("overview")


def test_no_console_errors(browser: Browser) -> None:
    assert browser.console == []
