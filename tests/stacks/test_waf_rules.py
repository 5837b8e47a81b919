"""WAF rules vs prompts: the managed core rule set's body rules (the body is the prompt) count
instead of block by default, per rule and configurable (edge.waf_common_rule_actions); every
other rule of the group keeps blocking. Asserted on the rendered web ACL."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from app_config import ConfigError, config_from_dict
from app_config.constants import WAF_COMMON_RULE_SET, WAF_COMMON_RULES, WAF_PROMPT_BODY_RULES
from cdk_constructs.waf import KNOWN_BAD_INPUTS_RULE_SET
from stacks.waf_stack import WafStack

BODY_RULES = ["SizeRestrictions_BODY", "EC2MetaDataSSRF_BODY", "GenericLFI_BODY", "GenericRFI_BODY",
              "CrossSiteScripting_BODY"]  # documented order


def _web_acl_rules(overrides: dict | None = None) -> list[dict]:
    config = config_from_dict({"edge": {"waf_common_rule_actions": overrides}} if overrides else {})
    app = cdk.App()
    stack = WafStack(app, "Waf", config=config, env=cdk.Environment(region="us-east-1"))
    template = app.synth().get_stack_by_name(stack.stack_name).template
    (acl,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::WAFv2::WebACL"]
    return acl["Properties"]["Rules"]


def _common_rule_group(overrides: dict | None = None) -> tuple[dict, dict]:
    (rule,) = [
        r for r in _web_acl_rules(overrides)
        if r["Statement"].get("ManagedRuleGroupStatement", {}).get("Name") == WAF_COMMON_RULE_SET
    ]
    return rule, rule["Statement"]["ManagedRuleGroupStatement"]


def test_known_bad_inputs_group_blocks_with_its_own_actions():
    """AWS's known-bad-inputs group (Log4j, Java deserialization) runs after the common rules and
    before the rate rule, with no override: checkov's CKV_AWS_192 asks for exactly this."""
    rules = _web_acl_rules()
    names = [r["Name"] for r in sorted(rules, key=lambda r: r["Priority"])]
    assert names == [WAF_COMMON_RULE_SET, KNOWN_BAD_INPUTS_RULE_SET, "RateLimitPerIp"]
    (rule,) = [r for r in rules if r["Name"] == KNOWN_BAD_INPUTS_RULE_SET]
    assert rule["OverrideAction"] == {"None": {}}
    assert rule["Statement"]["ManagedRuleGroupStatement"] == {"VendorName": "AWS", "Name": KNOWN_BAD_INPUTS_RULE_SET}


def test_default_counts_exactly_the_five_body_rules_and_blocks_the_rest():
    rule, group = _common_rule_group()
    assert (group["VendorName"], group["Name"]) == ("AWS", WAF_COMMON_RULE_SET)
    assert rule["OverrideAction"] == {"None": {}}  # the group's own actions apply...
    assert group["RuleActionOverrides"] == [{"Name": name, "ActionToUse": {"Count": {}}} for name in BODY_RULES]
    # ...so the other 17 rules (headers, URI path, query arguments, cookies) block.
    assert len(set(WAF_COMMON_RULES) - set(BODY_RULES)) == 17


def test_a_rule_can_be_set_back_to_block_and_another_to_count():
    _, group = _common_rule_group({"CrossSiteScripting_BODY": "block", "NoUserAgent_HEADER": "count"})
    overrides = {o["Name"]: o["ActionToUse"] for o in group["RuleActionOverrides"]}
    assert overrides["CrossSiteScripting_BODY"] == {"Block": {}}
    assert overrides["NoUserAgent_HEADER"] == {"Count": {}}
    assert overrides["GenericLFI_BODY"] == {"Count": {}}  # the other defaults stay (key-by-key merge)
    assert [o["Name"] for o in group["RuleActionOverrides"]] == [r for r in WAF_COMMON_RULES if r in overrides]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"CrossSiteScripting_Body": "count"}, "edge.waf_common_rule_actions: ['CrossSiteScripting_Body'] not a rule"),
        ({"GenericLFI_BODY": "allow"}, "edge.waf_common_rule_actions.GenericLFI_BODY"),
    ],
)
def test_unknown_rule_or_action_fails_naming_the_field(overrides, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"edge": {"waf_common_rule_actions": overrides}})
    assert expected in str(info.value)


def test_prompt_rules_are_exactly_the_groups_body_rules():
    assert sorted(WAF_PROMPT_BODY_RULES) == sorted(r for r in WAF_COMMON_RULES if r.endswith("_BODY"))
    assert len(WAF_COMMON_RULES) == len(set(WAF_COMMON_RULES)) == 22
