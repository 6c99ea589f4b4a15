"""Helpers for the config tests: small YAML texts and the problem lines they produce."""

from __future__ import annotations

from mcrd.config.load import ConfigError, parse_config

# A valid config with one VXC, one dual-stack interface and two IPv4 sessions. The comments
# are the line numbers the tests name; `insert_after` adds lines after one of them.
TWO_SESSIONS = """\
mcr: {productName: t}                                        # 1
prefixFilterLists:                                           # 2
  - id: 1                                                    # 3
    description: v4                                          # 4
    addressFamily: IPv4                                      # 5
    entries: [{action: permit, prefix: 10.0.0.0/8}]          # 6
  - id: 2                                                    # 7
    description: v6                                          # 8
    addressFamily: IPv6                                      # 9
    entries: [{action: permit, prefix: "2001:db8::/32"}]     # 10
vxcs:                                                        # 11
  - productName: aws                                         # 12
    interface: eth1                                          # 13
    vrouter:                                                 # 14
      interfaces:                                            # 15
        - ipAddresses: [192.0.2.1/29, "2001:db8::1/64"]      # 16
          bgpConnections:                                    # 17
            - peerAsn: 64512                                 # 18
              localIpAddress: 192.0.2.1                      # 19
              peerIpAddress: 192.0.2.2                       # 20
            - peerAsn: 12076                                 # 21
              localIpAddress: 192.0.2.1                      # 22
              peerIpAddress: 192.0.2.3                       # 23
"""
VXC = 13  # insert after this line to add VXC fields (line 14 on)
INTERFACE = 16  # ... interface fields (line 17 on)
SESSION_0 = 20  # ... fields of bgpConnections[0] (line 21 on)
SESSION_1 = 23  # ... fields of bgpConnections[1] (line 24 on)

SESSION_0_PATH = "vxcs[0].vrouter.interfaces[0].bgpConnections[0]"
SESSION_1_PATH = "vxcs[0].vrouter.interfaces[0].bgpConnections[1]"
INTERFACE_PATH = "vxcs[0].vrouter.interfaces[0]"


def insert_after(text: str, line: int, *new_lines: str) -> str:
    """`text` with `new_lines` after line `line` (1-based), indented like the key on that line."""
    lines = text.splitlines()
    anchor = lines[line - 1]
    indent = " " * (len(anchor) - len(anchor.lstrip(" -")))
    return "\n".join([*lines[:line], *(indent + new for new in new_lines), *lines[line:]]) + "\n"


def set_line(text: str, line: int, content: str) -> str:
    """`text` with line `line` (1-based) replaced by `content`, keeping its indentation and any `- `."""
    lines = text.splitlines()
    anchor = lines[line - 1]
    lines[line - 1] = anchor[: len(anchor) - len(anchor.lstrip(" -"))] + content
    return "\n".join(lines) + "\n"


def problems(text: str, source: str = "t.yaml") -> list[str]:
    """Every problem line parse_config reports for `text`, or [] if it is valid."""
    try:
        parse_config(text, source)
    except ConfigError as exc:
        return [str(problem) for problem in exc.problems]
    return []


def problem(text: str) -> str:
    """The one problem line `text` has (fails the test if there are none or several)."""
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML's "billion laughs": each line lists `width` aliases of the line before, `width ** levels` values in all
    (9 levels of 9: 342 bytes, 387 million values)."""
    names = [chr(ord("a") + i) if i < 26 else f"l{i}" for i in range(levels)]
    lol = ",".join(['"lol"'] * width)
    lines = [f"{names[0]}: &{names[0]} [{lol}]"]
    lines += [f"{names[i]}: &{names[i]} [{','.join(['*' + names[i - 1]] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"
