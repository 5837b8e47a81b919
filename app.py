#!/usr/bin/env python3
"""CDK entry point: read the config, build every stack, run cdk-nag, synthesize.

`cdk synth` (or `make synth`) runs this file. A bad config stops here with a message that
names the field, before any construct is created.
"""

from __future__ import annotations

import sys

import aws_cdk as cdk

from app_config import ConfigError, load_config
from stacks.app_builder import build_app


def main() -> None:
    app = cdk.App()
    try:
        config = load_config(
            {
                "config": app.node.try_get_context("config"),
                "config_file": app.node.try_get_context("config_file"),
            }
        )
        build_app(app, config)
    except ConfigError as exc:
        sys.exit(f"cdk synth: {exc}")
    app.synth()


if __name__ == "__main__":
    main()
