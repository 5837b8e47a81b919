"""`local up --host`: where the gateway listens, the URL tools use, and the URL for the audience."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from qvllm.local.network import AddressError, check_host, lan_address, local_url, public_url
from tests.support.local_stack import cli


def test_lan_address_is_this_machines_and_not_loopback():
    address = lan_address()
    assert not ipaddress.ip_address(address).is_loopback
    with socket.socket() as sock:  # an address of this machine: a socket binds to it
        sock.bind((address, 0))


def test_urls_for_each_kind_of_host():
    lan = lan_address()
    assert (local_url("127.0.0.1", 8000), public_url("127.0.0.1", 8000)) == ("http://127.0.0.1:8000",) * 2
    assert local_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert public_url("0.0.0.0", 8000) == f"http://{lan}:8000"
    assert (local_url(lan, 8000), public_url(lan, 8000)) == (f"http://{lan}:8000",) * 2
    assert public_url("::1", 8000) == "http://[::1]:8000"


@pytest.mark.parametrize("host", ["localhost", "my-laptop.local", "0.0.0.0:8000", ""])
def test_a_host_that_is_not_an_ip_address_is_refused(host):
    with pytest.raises(AddressError, match="is not an IP address"):
        check_host(host)


def test_local_up_refuses_a_bad_host_before_starting_anything(tmp_path):
    result = cli("local", "up", "--run-dir", str(tmp_path / "run"), "--host", "my-laptop.local", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Invalid value for --host: 'my-laptop.local' is not an IP address" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "state.json").exists()
