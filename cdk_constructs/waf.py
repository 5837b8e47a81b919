"""The CloudFront web ACL: AWS managed common rules, known bad inputs and a per-IP rate limit.

CLOUDFRONT-scope web ACLs must be created in us-east-1; the Edge stack (any region) receives
the ARN through a cross-region reference and passes it to ``Distribution(web_acl_id=...)``,
so the ACL is attached in the same deploy (the reference demo created its WAF and never
attached it).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from app_config.constants import WAF_COMMON_RULE_SET, WAF_COMMON_RULES

# AWS WAF: rate-based rules count requests per aggregation key over this window (seconds);
# the reference demo's limit is "2000 requests / 5 min".
RATE_WINDOW_SECONDS = 300
COMMON_RULE_SET = WAF_COMMON_RULE_SET
# Known bad inputs (AWS WAF Developer Guide, "Baseline rule groups":
# https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html):
# Log4j (CVE-2021-44228) and Java deserialization exploits, localhost Host headers, exploitable
# paths. Every rule blocks; a prompt that quotes an exploit string (``${jndi:ldap://...}``) is
# blocked too, which is the price of screening the paths and headers no client of this API sends.
KNOWN_BAD_INPUTS_RULE_SET = "AWSManagedRulesKnownBadInputsRuleSet"
AWS_VENDOR = "AWS"
_ACTIONS = {"count": wafv2.CfnWebACL.RuleActionProperty(count={}), "block": wafv2.CfnWebACL.RuleActionProperty(block={})}


@dataclass(frozen=True)
class WebAclProps:
    """Props of :class:`CloudFrontWebAcl`.

    Attributes:
        name_prefix: prefix of the ACL name and CloudWatch metric names.
        rate_limit_per_5min: requests one client IP may send per 5-minute window before it is
            blocked (AWS WAF's minimum is 10).
        common_rule_actions: ``(rule, "count" | "block")`` overrides of rules of the common
            rule set (``edge.waf_common_rule_actions``); rules not named keep the group's action.
    """

    name_prefix: str
    rate_limit_per_5min: int
    common_rule_actions: tuple[tuple[str, str], ...] = ()


class CloudFrontWebAcl(Construct):
    """A ``CfnWebACL`` with scope CLOUDFRONT; default action allow.

    Rules (priority order): ``AWSManagedRulesCommonRuleSet`` (with ``common_rule_actions`` as
    rule action overrides; by default its five body rules count, as the body is the prompt),
    :data:`KNOWN_BAD_INPUTS_RULE_SET` (its own actions, no overrides), then ``RateLimitPerIp`` (rate-based, key IP, limit ``rate_limit_per_5min``, window
    :data:`RATE_WINDOW_SECONDS`, action block). CloudWatch metrics and sampled requests are on
    for the ACL and every rule. Exposes ``web_acl`` and ``web_acl_arn``.
    """

    def __init__(self, scope: Construct, construct_id: str, props: WebAclProps) -> None:
        super().__init__(scope, construct_id)

        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=f"{props.name_prefix}-{metric}",
                sampled_requests_enabled=True,
            )

        common = wafv2.CfnWebACL.RuleProperty(
            name=COMMON_RULE_SET,
            priority=0,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name=AWS_VENDOR,
                    name=COMMON_RULE_SET,
                    rule_action_overrides=[
                        wafv2.CfnWebACL.RuleActionOverrideProperty(name=rule, action_to_use=_ACTIONS[action])
                        for rule, action in _in_documented_order(props.common_rule_actions)
                    ] or None,
                )
            ),
            visibility_config=visibility("common"),
        )
        known_bad_inputs = wafv2.CfnWebACL.RuleProperty(
            name=KNOWN_BAD_INPUTS_RULE_SET,
            priority=1,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name=AWS_VENDOR, name=KNOWN_BAD_INPUTS_RULE_SET
                )
            ),
            visibility_config=visibility("known-bad-inputs"),
        )
        rate = wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerIp",
            priority=2,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    aggregate_key_type="IP",
                    limit=props.rate_limit_per_5min,
                    evaluation_window_sec=RATE_WINDOW_SECONDS,
                )
            ),
            visibility_config=visibility("rate-per-ip"),
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="CLOUDFRONT",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            description="qvllm edge: AWS managed common rules and known bad inputs + per-IP rate limit",
            visibility_config=visibility("web-acl"),
            rules=[common, known_bad_inputs, rate],
        )
        self.web_acl_arn: str = self.web_acl.attr_arn


def _in_documented_order(actions: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """``actions`` sorted as the rule group documents its rules (a stable template).

    Raises:
        ValueError: a rule the common rule set does not have, or an action other than count/block.
    """
    by_rule = dict(actions)
    unknown = sorted(set(by_rule) - set(WAF_COMMON_RULES))
    bad = sorted(action for action in by_rule.values() if action not in _ACTIONS)
    if unknown or bad:
        raise ValueError(f"WebAclProps.common_rule_actions: unknown rules {unknown} or actions {bad}")
    return [(rule, by_rule[rule]) for rule in WAF_COMMON_RULES if rule in by_rule]
