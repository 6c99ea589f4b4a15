"""The ExaBGP API process: copies ExaBGP's output to the daemon's unix socket and the daemon's commands back.

ExaBGP runs its API process as a child and closes every inherited descriptor but stdin and stdout, so the daemon
cannot hand it a pipe; this bridge connects to a socket the daemon serves instead. It only copies bytes: stdin is
read without pause (ExaBGP writes to it with a blocking write, and a stalled reader makes it miss keepalives).

Its first line to the daemon, ahead of anything ExaBGP writes, is what the launcher installed into this ExaBGP
(`mcrd-exabgp-fixes REPORT`, from the environment ExaBGP inherited from the launcher; `-` when there is none).

Usage: python -m mcrd.bgp.bridge SOCKET_PATH
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from mcrd.bgp.exabgp_launch import REPORT_ENV, REPORT_LINE


def _copy_in(sock: socket.socket) -> None:
    """ExaBGP -> daemon, until ExaBGP closes our stdin."""
    try:
        while chunk := os.read(0, 65536):
            sock.sendall(chunk)
    except OSError:
        pass
    finally:
        os._exit(0)


def main() -> None:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m mcrd.bgp.bridge SOCKET_PATH\n")
        raise SystemExit(2)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(sys.argv[1])
    except OSError as exc:
        sys.stderr.write(f"mcrd bridge: cannot connect to {sys.argv[1]}: {exc.strerror}\n")
        raise SystemExit(1) from None
    sock.sendall(REPORT_LINE + os.environ.get(REPORT_ENV, "-").encode() + b"\n")
    threading.Thread(target=_copy_in, args=(sock,), daemon=True).start()
    try:
        while chunk := sock.recv(65536):  # daemon -> ExaBGP
            view = memoryview(chunk)
            while view:
                view = view[os.write(1, view) :]
    except OSError:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
