"""cluster.service_ipv4_cidr: EKS's rules for the Service range (CreateCluster
kubernetesNetworkConfig.serviceIpv4Cidr: a /12 to /24 inside 10.0.0.0/8, 172.16.0.0/12 or
192.168.0.0/16, not overlapping the VPC), refused with the field named."""

from __future__ import annotations

import pytest

from app_config import ConfigError, config_from_dict


@pytest.mark.parametrize("cidr", ["172.20.0.0/16", "10.100.0.0/16", "192.168.0.0/24", "172.16.0.0/12"])
def test_accepted(cidr):
    assert config_from_dict({"cluster": {"service_ipv4_cidr": cidr}}).cluster.service_ipv4_cidr == cidr


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cluster": {"service_ipv4_cidr": "100.64.0.0/16"}}, "must be a /12 to /24"),
        ({"cluster": {"service_ipv4_cidr": "10.0.0.0/8"}}, "must be a /12 to /24"),
        ({"cluster": {"service_ipv4_cidr": "172.20.0.0/25"}}, "must be a /12 to /24"),
        ({"network": {"vpc_cidr": "172.20.0.0/16"}}, "overlaps network.vpc_cidr"),
    ],
)
def test_refused_with_the_field_named(data, message):
    with pytest.raises(ConfigError, match=message) as err:
        config_from_dict(data)
    assert "service_ipv4_cidr" in str(err.value)
