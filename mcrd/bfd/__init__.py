"""Single-hop BFD (RFC 5880 asynchronous mode over RFC 5881) for mcrd's BGP connections with `bfdEnabled: true`.

Interface changes: none (additions only: `BfdStatus.tx_packets/rx_packets/discarded`, `BfdTransition.remote_state`).

Library decision: written here, not used or vendored.  Evaluated:
* aiobfd 0.2 (PyPI, MIT, last release 2017, ~800 lines): a standalone daemon, not a library to embed.  Its
  constructors call `loop.run_until_complete` (unusable inside a running loop such as mcrd's), bind
  `asyncio.get_event_loop()` at import time as a default argument, receive through asyncio datagram endpoints (no
  ancillary data, so no RFC 5881 TTL-255 check on receive, and on uvloop none can be added), have no
  SO_BINDTODEVICE, no way to add, remove or retime sessions at run time, no transition callback, no AdminDown on
  shutdown, and state, timers and I/O interleaved in coroutines (nothing testable without sockets).  Adapting it
  would mean rewriting all of it; it also pulls in `bitstring` for a 24-byte struct.
* Nothing else on PyPI implements BFD for Python (the "bfd" names there are the GNU Binary File Descriptor
  library).  FRR's bfdd and BIRD would be a second daemon to run, configure and watch per MCR; mcrd's container
  and `mcrd lab` start one process, and the reaction to a BFD Down (BGP teardown) is mcrd's own.
Writing it costs ~600 lines: a codec and a pure state machine (unit- and property-tested without root) and a small
socket edge, tested against FRR bfdd and BIRD in namespaces.

Modules: `packet` (RFC 5880 4.1 codec and the packet checks of 6.8.6), `session` (the state machine: values in, values
out, time passed in), `manager` (sockets, timers, the session table: `BfdManager`), `config` (`bfd_peers`).
The sessions run in a thread with its own event loop (`manager`'s docstring says why): a daemon loop held for seconds
by a route burst does not take BFD, and so BGP, down.

Measured (`python -m tests.bfd.measure 10`, root): from an nft rule dropping the peer's packets to Down with diag 1,
300 ms x 3 (a detection time of 900 ms), FRR 8.4 bfdd and BIRD 2.0.12, IPv4 and IPv6: 670-900 ms, medians ~810-830 ms.

Not implemented: Demand mode of our own (the remote's Demand mode is honoured: we stop periodic packets), the Echo
function (Required Min Echo RX is sent as 0), authentication (packets with the A bit are discarded, as RFC 5880
6.8.6 says for a session without authentication), multihop (RFC 5883), the passive role (mcrd always starts),
Control Plane Independent (C bit always 0), creating sessions for unsolicited packets (6.8.6's MAY: discarded).
AdminDown is sent once when a session is removed or at close(), not repeated for a Detection Time (a lost packet
leaves the peer to time out).  Sessions are keyed by peer address: one session per address, whatever the device.
"""

from mcrd.bfd.config import bfd_peers
from mcrd.bfd.manager import BfdManager, BfdPeerConfig, BfdStatus, BfdTransition
from mcrd.bfd.packet import BfdDiag, BfdState

__all__ = ["BfdDiag", "BfdManager", "BfdPeerConfig", "BfdState", "BfdStatus", "BfdTransition", "bfd_peers"]
