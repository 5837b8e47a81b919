"""Edge TLS: an optional custom domain (ACM certificate in us-east-1, Route 53 aliases, the
TLSv1.2_2021 viewer policy) and optional HTTPS from CloudFront to the internal ALB.

The default app keeps the *.cloudfront.net certificate and HTTP to the ALB, each with a checkov
skip that says why (tests/stacks/test_checkov_templates.py); here the configured app has neither
skip, and checkov passes its templates as they are. Synth stays offline: the hosted zone is
imported by id and name, never looked up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_config import ConfigError, config_from_dict
from app_config.constants import ALB_HTTPS_LISTENER_PORT
from tests.support.checkov import run_checkov

DOMAIN = {"name": "api.example.com", "hosted_zone_id": "Z0123456789ABCDEFGHIJ", "hosted_zone_name": "example.com"}
ORIGIN_TLS = {
    "certificate_arn": "arn:aws:acm:us-west-2:123456789012:certificate/11111111-2222-3333-4444-555555555555",
    "domain_name": "origin.example.com",
}


def _of_type(template: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def tls_app(tmp_path_factory):
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    outdir = tmp_path_factory.mktemp("cdk.out.tls")
    app = new_app(outdir)
    config = config_from_dict({"edge": {"custom_domain": DOMAIN, "origin_tls": ORIGIN_TLS}})
    stacks = build_app(app, config, nag=True)  # cdk-nag: CFR4 is no longer acknowledged, and passes
    assembly = app.synth()
    return stacks, {s.stack_name: s.template for s in assembly.stacks}, Path(assembly.directory)


def test_certificate_is_created_in_us_east_1_and_validated_in_the_zone(tls_app):
    stacks, templates, _ = tls_app
    assert stacks.certificate is not None and stacks.certificate.region == "us-east-1"
    (cert,) = _of_type(templates[stacks.certificate.stack_name], "AWS::CertificateManager::Certificate").values()
    props = cert["Properties"]
    assert props["DomainName"] == DOMAIN["name"] and props["ValidationMethod"] == "DNS"
    assert props["DomainValidationOptions"] == [{"DomainName": DOMAIN["name"], "HostedZoneId": DOMAIN["hosted_zone_id"]}]


def test_distribution_serves_the_domain_with_tls12_2021(tls_app):
    stacks, templates, _ = tls_app
    (dist,) = _of_type(templates[stacks.edge.stack_name], "AWS::CloudFront::Distribution").values()
    config = dist["Properties"]["DistributionConfig"]
    assert config["Aliases"] == [DOMAIN["name"]]
    viewer = config["ViewerCertificate"]
    assert viewer["MinimumProtocolVersion"] == "TLSv1.2_2021" and viewer["SslSupportMethod"] == "sni-only"
    assert "AcmCertificateArn" in viewer and "CloudFrontDefaultCertificate" not in viewer
    assert "checkov" not in dist.get("Metadata", {})


def test_alias_records_point_at_the_distribution(tls_app):
    stacks, templates, _ = tls_app
    records = _of_type(templates[stacks.edge.stack_name], "AWS::Route53::RecordSet").values()
    by_type = {(r["Properties"]["Type"], r["Properties"]["Name"]): r["Properties"] for r in records}
    for kind in ("A", "AAAA"):
        record = by_type[(kind, f"{DOMAIN['name']}.")]
        assert record["HostedZoneId"] == DOMAIN["hosted_zone_id"]
        assert record["AliasTarget"]["DNSName"]["Fn::GetAtt"][1] == "DomainName"
        assert record["AliasTarget"]["DNSName"]["Fn::GetAtt"][0].startswith("EdgeDistribution")
    cname = by_type[("CNAME", f"{ORIGIN_TLS['domain_name']}.")]
    assert "DNSName" in json.dumps(cname["ResourceRecords"])  # the ALB's DNS name


def test_origin_is_https_only_to_an_https_listener(tls_app):
    stacks, templates, _ = tls_app
    edge = templates[stacks.edge.stack_name]
    (listener,) = _of_type(edge, "AWS::ElasticLoadBalancingV2::Listener").values()
    props = listener["Properties"]
    assert (props["Protocol"], props["Port"]) == ("HTTPS", ALB_HTTPS_LISTENER_PORT)
    assert props["Certificates"] == [{"CertificateArn": ORIGIN_TLS["certificate_arn"]}]
    assert props["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    (vpc_origin,) = _of_type(edge, "AWS::CloudFront::VpcOrigin").values()
    endpoint = vpc_origin["Properties"]["VpcOriginEndpointConfig"]
    assert endpoint["OriginProtocolPolicy"] == "https-only" and endpoint["HTTPSPort"] == ALB_HTTPS_LISTENER_PORT
    (dist,) = _of_type(edge, "AWS::CloudFront::Distribution").values()
    (origin,) = dist["Properties"]["DistributionConfig"]["Origins"]
    assert origin["DomainName"] == ORIGIN_TLS["domain_name"]
    ingress = [r["Properties"] for r in _of_type(edge, "AWS::EC2::SecurityGroupIngress").values()]
    assert [(i["FromPort"], i["ToPort"]) for i in ingress] == [(ALB_HTTPS_LISTENER_PORT, ALB_HTTPS_LISTENER_PORT)]


@pytest.mark.slow  # a checkov run
def test_checkov_passes_the_edge_without_tls_skips(tls_app):
    stacks, _, outdir = tls_app
    names = (stacks.edge.stack_name, stacks.certificate.stack_name)
    report = run_checkov([outdir / f"{n}.template.json" for n in names], "cloudformation")
    assert [str(f) for f in report.failed] == []
    assert not {"CKV_AWS_2", "CKV_AWS_103", "CKV_AWS_174"} & {s.check_id for s in report.skipped}


@pytest.mark.parametrize(
    ("edge", "message"),
    [
        ({"custom_domain": {"name": "api.example.com"}}, "give hosted_zone_id + hosted_zone_name"),
        ({"custom_domain": DOMAIN | {"hosted_zone_name": "example.org"}}, "is not inside hosted zone"),
        ({"custom_domain": {"name": "api.example.com", "hosted_zone_id": "Z0123"}}, "go together"),
        (
            {"custom_domain": {"name": "api.example.com", "certificate_arn": ORIGIN_TLS["certificate_arn"]}},
            "certificate_arn must be in us-east-1",
        ),
        ({"custom_domain": {"name": "API.example.com", "certificate_arn": "x"}}, "edge.custom_domain.name"),
        ({"origin_tls": {"certificate_arn": ORIGIN_TLS["certificate_arn"]}}, "edge.origin_tls.domain_name"),
    ],
)
def test_bad_tls_config_fails_naming_the_field(edge, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"edge": edge})
    assert message in str(info.value) and "edge." in str(info.value)


def test_an_existing_certificate_needs_no_certificate_stack():
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    arn = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
    app = new_app()
    stacks = build_app(app, config_from_dict({"edge": {"custom_domain": {"name": "api.example.com", "certificate_arn": arn}}}), nag=False)
    assert stacks.certificate is None
    template = app.synth().get_stack_by_name(stacks.edge.stack_name).template
    (dist,) = _of_type(template, "AWS::CloudFront::Distribution").values()
    assert dist["Properties"]["DistributionConfig"]["ViewerCertificate"]["AcmCertificateArn"] == arn
    assert not _of_type(template, "AWS::Route53::RecordSet")  # no zone given: the operator points the name
