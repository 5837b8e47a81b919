"""Suite-wide fixtures: the repo paths, ONE synthesized app with the default config and views of it
(templates by stack, the Cluster stack's resources), and the real-model local stack.

Synthesizing the whole app costs 10-20 s, so every test that only reads the default app's
templates shares the session fixture ``default_app`` instead of building its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# jsii runs the CDK's JavaScript on Node 22 from npm (the machine's Node 20 is end of life).
_node = REPO_ROOT / "node_modules" / ".bin" / "node"
if _node.exists():
    os.environ.setdefault("JSII_NODE", str(_node))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@dataclass(frozen=True)
class SynthesizedApp:
    """The default app, built and synthesized once.

    Attributes:
        stacks: :class:`stacks.app_builder.AppStacks` (construct objects).
        assembly: the ``CloudAssembly`` from ``app.synth()`` (cdk-nag ran; synth raised on findings).
        templates: stack name -> CloudFormation template (dict).
    """

    stacks: object
    assembly: object
    templates: dict


@pytest.fixture(scope="session")
def default_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    """Build the app from the default config with cdk-nag on, and synthesize it once."""
    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = new_app(outdir)
    stacks = build_app(app, config_from_dict({}), nag=True)
    assembly = app.synth()
    templates = {stack.stack_name: stack.template for stack in assembly.stacks}
    return SynthesizedApp(stacks=stacks, assembly=assembly, templates=templates)



# The five stacks of the default app, by the suffix stacks/app_builder.py gives their names.
STACK_SUFFIXES = ("Network", "ModelStore", "Waf", "Edge", "Cluster")


@pytest.fixture(scope="session")
def stack_names(default_app) -> dict[str, str]:
    """Stack suffix ("Edge") -> stack name ("Qvllm-Edge") of the default app."""
    return {name.rsplit("-", 1)[-1]: name for name in default_app.templates}


@pytest.fixture(scope="session")
def templates(default_app, stack_names) -> dict[str, dict]:
    """Stack suffix -> synthesized CloudFormation template (dict)."""
    return {suffix: default_app.templates[name] for suffix, name in stack_names.items()}


@pytest.fixture(scope="session")
def assertions(templates) -> dict:
    """Stack suffix -> ``aws_cdk.assertions.Template``."""
    from aws_cdk.assertions import Template

    return {suffix: Template.from_json(tpl) for suffix, tpl in templates.items()}


@pytest.fixture(scope="session")
def assembly_dir(default_app) -> Path:
    """The cloud assembly directory the session synth wrote (templates, metadata, reports)."""
    return Path(default_app.assembly.directory)


@pytest.fixture(scope="session")
def artifacts(default_app, stack_names) -> dict[str, object]:
    """Stack suffix -> ``CloudFormationStackArtifact``."""
    by_name = {art.stack_name: art for art in default_app.assembly.stacks}
    return {suffix: by_name[name] for suffix, name in stack_names.items()}


@pytest.fixture(scope="session")
def cluster_app(default_app):
    """(AppStacks, cluster template dict) of the default config, from the suite's one synth."""
    return default_app.stacks, default_app.templates[default_app.stacks.cluster.stack_name]


@pytest.fixture(scope="session")
def template(cluster_app):
    """``aws_cdk.assertions.Template`` of the default Cluster stack."""
    from aws_cdk.assertions import Template

    return Template.from_json(cluster_app[1])


@pytest.fixture(scope="session")
def resources(cluster_app) -> dict:
    """The default Cluster stack's ``Resources`` (logical id -> resource dict)."""
    return cluster_app[1]["Resources"]

# Fixtures that start a local OCI registry (the deploy rehearsal's stand-ins for public.ecr.aws
# and ghcr.io): their tests carry the ``registry`` marker, which ``make test-fast`` deselects.
REGISTRY_FIXTURES = frozenset({"rehearsal"})


# tryfirst: pytest-xdist's worker reads the xdist_group marks in its own pytest_collection_modifyitems
# (it appends "@group" to the node ids --dist loadgroup schedules by); without tryfirst that hook ran
# before this one, saw no marks, and every worker synthesized the app (the pytest pin in
# requirements-dev.txt is the other half). tests/repo/test_test_harness.py guards both.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that run a local registry ``registry``; under pytest-xdist (``make
    test-fast``) run every test of the synthesized default app on one worker (``--dist
    loadgroup``): each worker that needs the app synthesizes it once; likewise every test of the
    real-model local stack on one worker (one stack, not one per worker)."""
    xdist = config.pluginmanager.hasplugin("xdist")
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & REGISTRY_FIXTURES:
            item.add_marker(pytest.mark.registry)
        if xdist and "default_app" in fixtures:
            item.add_marker(pytest.mark.xdist_group("synth"))
        if xdist and "real_stack" in fixtures:
            item.add_marker(pytest.mark.xdist_group("real-stack"))


@pytest.fixture(scope="session")
def real_stack(tmp_path_factory: pytest.TempPathFactory):
    """The local stack with its default, real model (SmolLM2-135M-Instruct streamed from moto S3),
    started once for the session with `qvllm local up` and stopped with `local down`.

    Shared by the real-answer tests (tests/cli) and the chat-page browser tests (tests/gateway).
    """
    from tests.support.local_stack import running_local_stack

    with running_local_stack(tmp_path_factory.mktemp("real-stack") / "run") as stack:
        yield stack
