"""Print the stacks a synth wrote and where their templates are (reads cdk.out/manifest.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out_dir: str = "cdk.out") -> int:
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    stacks = [
        (name, art)
        for name, art in manifest["artifacts"].items()
        if art.get("type") == "aws:cloudformation:stack"
    ]
    print(f"Synthesized {len(stacks)} stacks into {Path(out_dir).resolve()}:")
    for name, art in sorted(stacks):
        template = Path(out_dir) / art["properties"]["templateFile"]
        resources = len(json.loads(template.read_text()).get("Resources", {}))
        print(f"  {name:<22} {art.get('environment', ''):<32} {template}  ({resources} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
