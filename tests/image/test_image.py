"""The container image: built from the repository's Dockerfile as it is, run the way containerlab runs it.

- Base image: no registry can be reached, so the Dockerfile's base (`ARG PYTHON_IMAGE`, python:3.11-slim-bookworm)
  is made here: a Debian bookworm root filesystem from mmdebstrap (Debian's python3 is 3.11) with pip and venv, PEP
  668's EXTERNALLY-MANAGED marker removed (the official image has none), this machine's CA certificates and pip
  configuration copied in (the files it names are copied, the folders it names are bound read-only into the build),
  then `podman import`ed under the base's name.
- Build: `podman build --format docker` (the default OCI format drops HEALTHCHECK), host network for apt and pip.
- podman's storage lives in a temporary folder of this run, removed at the end: CI runs on a clean machine where a
  cache would always be cold, a run leaves nothing behind, and nothing is shared with other podman users of the
  machine. The cost is a base and a build per run (about 80 s on an idle machine, measured and printed). To work on
  the image, `MCRD_IMAGE_STORE=DIR` keeps the storage in DIR from run to run.
- Run, as containerlab does: the node starts with no data interface (`--network none`, privileged, the sysctls of
  containerlab/hub-spoke, CLAB_INTFS=2, the config bound read-only at /etc/mcrd/mcrd.yaml); then each link's veth
  end is moved into the container's namespace and renamed eth1, eth2. The peers are FRR in namespaces.

podman settings are in containers.conf beside this file (CONTAINERS_CONF): nothing in /etc is changed. The module
skips when podman cannot run a container here, saying why; a missing tool fails under CI (scripts/setup installs
them) and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import module_lab, require_lab
from tests.lab.harness import FrrNeighbor, FrrPeer, Lab, Netns, assert_stays, frr_config, poll

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="image tests need root: podman, namespaces and FRR (CI is root)"),
]

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
TOOLS = {"podman": "podman", "buildah": "buildah", "runc": "runc", "mmdebstrap": "mmdebstrap",
         "nsenter": "util-linux"}
BASE_PACKAGES = "python3,python3-pip,python3-venv,python-is-python3,ca-certificates"
# A folder for podman's storage kept from run to run (the base is made once, the build reuses its layers): for
# working on the image. Unset (CI), the storage is this run's and removed at the end.
STORE_ENV = "MCRD_IMAGE_STORE"
BUILD_TIMEOUT = 900.0
TIMEOUT = 60.0

MCR_AS, AWS_AS, AZURE_AS = 133937, 64512, 12076
AWS_KEY = "image-md5-key"
# eth1: AWS (MD5), eth2: Azure; hosts behind each cloud router.
AWS_HUB, AWS_PEER, AZURE_HUB, AZURE_PEER = "169.254.100.1", "169.254.100.2", "192.168.30.1", "192.168.30.2"
VPC, VNET = "10.10.0.0/16", "10.30.0.0/16"
HOST_A, HOST_B = "10.10.1.10", "10.30.1.10"
LOG_CHANGES = ("bgp log-neighbor-changes",)  # FRR then logs each NOTIFICATION it receives, code, subcode and all
# The data interfaces and what they are called inside the container.
LINKS = {"eth1": "aws", "eth2": "azure"}
# No compiler, linker or build system in the image, by command and by Debian package.
BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "cpp", "make", "ld", "as")
BUILD_PACKAGES = ("build-essential", "gcc", "gcc-12", "g++", "cpp", "binutils", "make", "libc6-dev", "python3-dev",
                  "libpython3.11-dev")


def dockerfile_base() -> str:
    """The base image the Dockerfile names (`ARG PYTHON_IMAGE=...`)."""
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile has no ARG PYTHON_IMAGE=<base image>"
    return match.group(1)


def pip_settings() -> tuple[str, list[Path], list[Path]]:
    """This machine's pip configuration as one pip.conf (every file and PIP_* variable pip reads, as `pip config
    list` merges them), the files it names (to copy into the base) and the folders it names (to bind into the
    build)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    settings: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r"^[^.]*\.([\w-]+)='(.*)'$", line)
        if match:
            settings[match.group(1)] = match.group(2)
    files: list[Path] = []
    folders: list[Path] = []
    for value in settings.values():
        for word in value.split():
            path = Path(urllib.parse.urlparse(word).path) if word.startswith("file://") else Path(word)
            if word.startswith("file://") and path.name == "simple":
                path = path.parent  # a PEP 503 index on disk: its pages link to files beside `simple`
            if not path.is_absolute() or not path.exists():
                continue
            if path.is_dir():
                folders.append(path)
            elif not path.is_relative_to("/etc/ssl"):  # the CA bundle is remade in the base from its certificates
                files.append(path)
    text = "[global]\n" + "".join(f"{key} = {value}\n" for key, value in sorted(settings.items()))
    return text, sorted(set(files)), sorted(set(folders))


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A measured figure, printed even under `pytest -q`."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"tests/image: {line}")


@dataclass
class Podman:
    """podman with this run's storage and settings."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}

    def command(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.home / "root"), "--runroot", str(self.home / "run"),
                "--tmpdir", str(self.home / "tmp"), "--network-config-dir", str(self.home / "networks"),
                "--storage-driver", "overlay", *args]

    def run(self, *args: str, check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.command(*args), capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return proc

    def clean(self) -> None:
        """Remove every container and image of this storage, then the storage itself (and its mounts)."""
        self.run("rm", "--all", "--force", "--time", "0", check=False)
        self.run("rmi", "--all", "--force", check=False, timeout=300)
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.home))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class Image:
    podman: Podman
    name: str
    base: str


def missing_tools() -> list[str]:
    return sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})


def make_base(podman: Podman, base: str, request: pytest.FixtureRequest) -> None:
    """The Dockerfile's base, made from Debian bookworm (module docstring) and imported as `base`."""
    pip_conf, files, _ = pip_settings()
    (podman.home / "pip.conf").write_text(pip_conf)
    hooks = [
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
        f'cp {podman.home / "pip.conf"} "$1"/etc/pip.conf',
        'cp -a /usr/local/share/ca-certificates/. "$1"/usr/local/share/ca-certificates/',
        'chroot "$1" update-ca-certificates >/dev/null 2>&1',
        *(f'mkdir -p "$1"{path.parent} && cp {path} "$1"{path}' for path in files),
    ]
    tarball = podman.home / "base.tar"
    started = time.monotonic()
    proc = subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={BASE_PACKAGES}",
                           *(f"--customize-hook={hook}" for hook in hooks), "bookworm", str(tarball)],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, f"mmdebstrap failed: {proc.stderr[-3000:]}"
    podman.run("import", "--change", 'CMD ["python3"]', str(tarball), f"localhost/{base}", timeout=300)
    tarball.unlink()
    report(request, f"base image {base} made with mmdebstrap and imported in {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest) -> Iterator[Image]:
    require_lab()
    missing = missing_tools()
    if missing:
        message = f"image tests need apt packages {', '.join(missing)} (scripts/setup installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    kept = os.environ.get(STORE_ENV)
    podman = Podman(Path(kept) if kept else Path(tempfile.mkdtemp(prefix="mcrd-image-", dir="/var/tmp")))
    try:
        base = dockerfile_base()
        if not (kept and podman.run("image", "exists", base, check=False).returncode == 0):
            make_base(podman, base, request)
        probe = podman.run("run", "--rm", "--pull=never", "--network", "none", base, "true", check=False)
        if probe.returncode != 0:
            pytest.skip(f"podman cannot run containers here: {probe.stderr.strip()[-500:]}")
        name = "localhost/mcrd:image-test"
        _, _, folders = pip_settings()
        started = time.monotonic()
        podman.run("build", "--format", "docker", "--network", "host", "--pull=never",
                   *(f"--volume={folder}:{folder}:ro" for folder in folders),
                   "--file", str(ROOT / "Dockerfile"), "--tag", name, str(ROOT), timeout=BUILD_TIMEOUT)
        report(request, f"podman build --format docker of the Dockerfile: {time.monotonic() - started:.0f} s")
        yield Image(podman, name, base)
    finally:
        if not kept:
            podman.clean()


def image_config(image: Image) -> dict[str, Any]:
    [inspected] = json.loads(image.podman.run("image", "inspect", image.name).stdout)
    return dict(inspected)


def test_the_image_keeps_its_health_check_and_holds_no_build_tools(image: Image,
                                                                   request: pytest.FixtureRequest) -> None:
    inspected = image_config(image)
    size_mb = inspected["Size"] / 1e6
    report(request, f"image size {size_mb:.0f} MB (base {image.base}: "
           f"{image_config(Image(image.podman, image.base, image.base))['Size'] / 1e6:.0f} MB)")
    # Kept by --format docker; an OCI build would have dropped it with a warning.
    healthcheck = inspected.get("Healthcheck") or inspected["Config"].get("Healthcheck") or {}
    assert healthcheck.get("Test") == ["CMD", "mcrd-healthcheck"], inspected
    assert inspected["Config"]["Entrypoint"] == ["tini", "--", "mcrd-entrypoint"]
    script = ("for t in " + " ".join(BUILD_TOOLS) + "; do command -v $t; done; "
              "dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' " + " ".join(BUILD_PACKAGES) + " 2>/dev/null "
              "| grep ' ii' || true; find /var/lib/apt/lists /var/cache/apt/archives -type f ! -name lock; "
              "mcrd --help >/dev/null && echo mcrd-runs")
    out = image.podman.run("run", "--rm", "--network", "none", "--entrypoint", "sh", image.name, "-c", script)
    assert out.stdout.split() == ["mcrd-runs"], f"build tools or apt lists in the image: {out.stdout}"


# --- the image run as a containerlab node -----------------------------------------------------------------------


def mcr_config() -> str:
    """The node's config: eth1 to AWS (MD5, its VPC only), eth2 to Azure; the looking glass on every address."""
    config = {
        "mcr": {"productName": "image-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1"},
        "api": {"listen": "0.0.0.0:8080"},
        "vxcs": [
            {"productName": "aws", "interface": "eth1", "vrouter": {"interfaces": [{
                "ipAddresses": [f"{AWS_HUB}/30"],
                "bgpConnections": [{"peerAsn": AWS_AS, "localIpAddress": AWS_HUB, "peerIpAddress": AWS_PEER,
                                    "password": AWS_KEY, "holdTime": 9, "peerType": "PRIV_CLOUD"}]}]}},
            {"productName": "azure", "interface": "eth2", "vrouter": {"interfaces": [{
                "ipAddresses": [f"{AZURE_HUB}/30"],
                "bgpConnections": [{"peerAsn": AZURE_AS, "localIpAddress": AZURE_HUB, "peerIpAddress": AZURE_PEER,
                                    "holdTime": 9, "peerType": "PRIV_CLOUD"}]}]}},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class Node:
    image: Image
    lab: Lab
    name: str
    pid: int
    peers: dict[str, FrrPeer]
    hosts: dict[str, Netns]

    def logs(self) -> str:
        return node_logs(self.image, self.name)

    def nsenter(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        """A command in the container's network namespace."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", *cmd], capture_output=True, text=True,
                              check=True, timeout=30)

    def kernel(self) -> dict[str, str]:
        """mcrd's routes (its protocol 252) in the container's kernel: prefix -> gateway."""
        routes = json.loads(self.nsenter("ip", "-j", "route", "show", "proto", "252").stdout or "[]")
        return {route["dst"]: route.get("gateway", "") for route in routes}

    def state(self) -> dict[str, Any]:
        [inspected] = json.loads(self.image.podman.run("inspect", self.name).stdout)
        return dict(inspected["State"])


def node_logs(image: Image, name: str) -> str:
    """What the container wrote (entrypoint, mcrd, ExaBGP), as `podman logs` shows it."""
    proc = image.podman.run("logs", name, check=False)
    return proc.stdout + proc.stderr


def attach(lab: Lab, peer_ns: Netns, pid: int, inside: str, outside: str) -> None:
    """containerlab's link: a veth pair made beside the peer, one end moved into the node and renamed."""
    temporary = lab.ifname(f"m{inside}")
    peer_ns.ip("link", "add", outside, "type", "veth", "peer", "name", temporary)
    peer_ns.ip("link", "set", outside, "up")
    peer_ns.ip("link", "set", temporary, "netns", str(pid))
    for args in (("link", "set", temporary, "name", inside), ("link", "set", inside, "up")):
        subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def node(image: Image, request: pytest.FixtureRequest) -> Iterator[Node]:
    with module_lab("test_image", request) as lab:
        config = lab.make_dir("node") / "mcrd.yaml"
        config.write_text(mcr_config())
        name = f"mcrd-{lab.run_id}"
        try:
            image.podman.run(
                "run", "--detach", "--name", name, "--hostname", "mcr", "--network", "none", "--privileged",
                "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "net.ipv6.conf.all.forwarding=1",
                "--sysctl", "net.ipv4.conf.all.rp_filter=0", "--sysctl", "net.ipv4.conf.default.rp_filter=0",
                "--env", f"CLAB_INTFS={len(LINKS)}", "--volume", f"{config}:/etc/mcrd/mcrd.yaml:ro", image.name)
            pid = int(image.podman.run("inspect", "--format", "{{.State.Pid}}", name).stdout)
            yield build_node(lab, image, name, pid)
        finally:
            if request.session.testsfailed:
                print(node_logs(image, name)[-6000:])
            image.podman.run("rm", "--force", "--time", "0", name, check=False)


def build_node(lab: Lab, image: Image, name: str, pid: int) -> Node:
    aws, azure = lab.netns("aws"), lab.netns("azure")
    hosta, hostb = lab.netns("hosta"), lab.netns("hostb")
    node = Node(image, lab, name, pid, {}, {"a": hosta, "b": hostb})
    poll(node.logs, TIMEOUT, "the entrypoint says it waits", until=lambda text: "waiting up to" in text)
    # Devices named like the fallback tunnels some kernels put in every namespace are not data interfaces. (This
    # kernel makes none, and cannot make them by hand without their modules: veths with their names stand in.)
    node.nsenter("ip", "link", "add", "tunl0", "type", "veth", "peer", "name", "sit0")
    # The entrypoint looks once a second: three seconds cover two looks after the devices appeared.
    assert_stays(lambda: "data interfaces present" not in node.logs(), 3.0,
                 "the entrypoint must not count tunl0 and sit0 as data interfaces")
    for ns, (inside, peer_if) in ((aws, ("eth1", "mcr")), (azure, ("eth2", "mcr"))):
        attach(lab, ns, pid, inside, lab.ifname(peer_if))
    aws.add_address(lab.ifname("mcr"), f"{AWS_PEER}/30")
    azure.add_address(lab.ifname("mcr"), f"{AZURE_PEER}/30")
    lab.link(hosta, "eth0", aws, "hosta", [f"{HOST_A}/24"], ["10.10.1.1/24"])
    lab.link(hostb, "eth0", azure, "hostb", [f"{HOST_B}/24"], ["10.30.1.1/24"])
    hosta.add_route("default", via="10.10.1.1")
    hostb.add_route("default", via="10.30.1.1")
    for ns in (aws, azure):
        ns.enable_forwarding()
    node.peers["aws"] = FrrPeer(aws, AWS_AS, "10.0.0.1", frr_config(
        AWS_AS, "10.0.0.1", [FrrNeighbor(AWS_HUB, MCR_AS, password=AWS_KEY, hold_time=9, extra=LOG_CHANGES)], [VPC],
        hostname="aws", graceful_restart=False))
    node.peers["azure"] = FrrPeer(azure, AZURE_AS, "10.0.0.2", frr_config(
        AZURE_AS, "10.0.0.2", [FrrNeighbor(AZURE_HUB, MCR_AS, hold_time=9, extra=LOG_CHANGES)], [VNET],
        hostname="azure", graceful_restart=False))
    return node


def logged_notification(lab: Lab, peer: FrrPeer) -> str:
    """The line FRR logs for the NOTIFICATION it received (`bgp log-neighbor-changes`), once it is there. Only
    received ones, and not the Cease 6/7 either side may send at start when FRR's connection and mcrd's collide."""
    def lines() -> list[str]:
        text = lab.log_of(peer.bgpd).read_text(errors="replace")
        return [line for line in text.splitlines()
                if "%NOTIFICATION: received" in line and "Connection Collision Resolution" not in line]

    [line] = poll(lines, TIMEOUT, f"{peer!r} logs a NOTIFICATION")
    return line


# --- tests, in order: the node is shared and the last test stops it -------------------------------------------------


def test_the_entrypoint_waits_for_the_data_interfaces_then_starts_mcrd(node: Node) -> None:
    logs = poll(node.logs, TIMEOUT, "mcrd started", until=lambda text: "starting mcrd run" in text)
    waiting, present, starting = (logs.index(s) for s in ("waiting up to 60s for 2 data interfaces",
                                                          "2 data interfaces present after", "starting mcrd run"))
    assert waiting < present < starting


def test_sessions_establish_and_routes_reach_the_kernel_and_the_peers(node: Node) -> None:
    aws, azure = node.peers["aws"], node.peers["azure"]
    aws.wait_established(AWS_HUB, TIMEOUT)  # with MD5
    azure.wait_established(AZURE_HUB, TIMEOUT)
    poll(node.kernel, TIMEOUT, "the container's kernel", until=lambda got: got == {VPC: AWS_PEER, VNET: AZURE_PEER})
    assert aws.wait_route(VNET, TIMEOUT).as_path == (MCR_AS, AZURE_AS)
    assert azure.wait_route(VPC, TIMEOUT).as_path == (MCR_AS, AWS_AS)


def test_a_host_behind_aws_reaches_a_host_behind_azure_through_the_node(node: Node) -> None:
    poll(lambda: node.hosts["a"].ping(HOST_B), TIMEOUT, "ping hosta -> hostb across the container")
    assert node.hosts["b"].ping(HOST_A)


def test_the_health_check_passes(node: Node) -> None:
    proc = node.image.podman.run("healthcheck", "run", node.name, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = node.state()
    assert (state.get("Health") or state.get("Healthcheck") or {}).get("Status") == "healthy", state


def test_podman_stop_exits_0_and_every_peer_counts_a_cease(node: Node, request: pytest.FixtureRequest) -> None:
    hubs = {"aws": AWS_HUB, "azure": AZURE_HUB}
    before = {name: peer.last_notification(hubs[name]) for name, peer in node.peers.items()}
    started = time.monotonic()
    node.image.podman.run("stop", "--time", "20", node.name)
    took = time.monotonic() - started
    report(request, f"podman stop: {took:.2f} s until the container exited")
    state = node.state()
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert took < 15.0  # generous: mcrd stops in well under a second here; podman's own SIGKILL comes at 20 s
    for name, peer in node.peers.items():
        # Counted, and named in FRR's log: the container's end of the link goes with its namespace right after the
        # Cease, and FRR's "interface down" reset then replaces the last error that `show bgp neighbors` gives.
        peer.wait_notification(hubs[name], before[name][0], TIMEOUT)
        line = logged_notification(node.lab, peer)
        report(request, f"{name} (FRR) after podman stop: {line.split('%', 1)[1][:110]}")
        assert f"received from neighbor {hubs[name]} 6/2 (Cease/Administrative Shutdown)" in line
    assert "kernel_routes_removed" in node.logs()
