"""A problem with an MD5 key, token or broker password never shows the value (it may be a real key)."""

from __future__ import annotations

import pytest

from mcrd.config.load import ConfigError, parse_config

BASE = """\
mcr: {{routerId: 10.255.0.1}}
vxcs:
  - productName: aws
    interface: eth1
    vrouter:
      interfaces:
        - ipAddresses: [169.254.10.1/30]
          bgpConnections:
            - {{peerAsn: 64512, localIpAddress: 169.254.10.1, peerIpAddress: 169.254.10.2, {conn}}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "t.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("conn", "secret", "message"),
    [
        ("password: 123456789", "123456789",
         "password: is not a string (write the key as text, in quotes if it looks like a number)"),
        ("password: s3cr3t-abcdefghijklmnopqrstuv", "s3cr3t", "password: is 29 characters long, at most 25 allowed"),
        ("password: first-key, password: second-key", "-key", 'duplicate key "password"'),
    ],
)
def test_password_problems_do_not_show_the_key(conn: str, secret: str, message: str) -> None:
    [problem] = problems(BASE.format(conn=conn))
    assert problem.endswith(message)
    assert secret not in problem


def test_api_token_problems_do_not_show_it() -> None:
    [problem] = problems("api: {token: 12345678}\n" + BASE.format(conn="peerType: NON_CLOUD"))
    assert problem.startswith("t.yaml:1: api.token: is not a string")
    assert "12345678" not in problem
