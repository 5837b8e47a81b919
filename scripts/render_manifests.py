"""Render every cdk8s chart to YAML files for review: ``make manifests``.

Usage::

    python scripts/render_manifests.py OUTDIR [-c config_file=my.yaml] [-c config='{"scaling": {...}}']

Writes ``OUTDIR/<NN>-<chart>.yaml`` (one multi-document file per chart, in apply order) with
placeholder deploy-time values (fake ARN, ids, bucket; see ``DeployValues.placeholders``), and
prints one line per file. Needs no AWS account and no network. Exit status 2 on a bad config.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
_node = REPO_ROOT / "node_modules" / ".bin" / "node"
if _node.exists():
    os.environ.setdefault("JSII_NODE", str(_node))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import yaml  # noqa: E402

from app_config import ConfigError, load_config  # noqa: E402


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (collector config, user data) as ``|`` blocks for readable diffs."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: list[dict]) -> str:
    """Objects as a multi-document YAML string (key order kept)."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, width=10_000)


def _context(pairs: list[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"-c expects KEY=VALUE, got {pair!r}")
        context[key] = value
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        config = load_config(_context(args.context), base_dir=Path.cwd())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from k8s_charts import render_all

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob("*.yaml"):
        old.unlink()
    rendered = render_all(config)
    print(f"Rendered {sum(len(v) for v in rendered.values())} objects from {len(rendered)} charts into {outdir.resolve()}:")
    for index, (key, objects) in enumerate(rendered.items(), start=1):
        path = outdir / f"{index:02d}-{key.replace('_', '-')}.yaml"
        path.write_text(to_yaml(objects))
        kinds = ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
        print(f"  {path}  ({len(objects)}: {kinds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
