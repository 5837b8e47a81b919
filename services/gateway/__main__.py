"""``python -m services.gateway [--host HOST]``: serve the gateway with uvicorn on ``GATEWAY_PORT``.

The container runs it as is (all interfaces, behind the ALB); ``qvllm local up`` runs the same
entry point on a loopback address, so the local gateway shuts down as the cluster's does.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from services.gateway.settings import (
    ENV_PORT,
    ENV_UPSTREAM_URL,
    GRACEFUL_SHUTDOWN_SECONDS,
    GatewaySettings,
    SettingsError,
    load_settings,
)

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - container port behind the ALB


def main(argv: list[str] | None = None) -> None:
    """Run uvicorn in factory mode (uvloop and httptools, no access log: the app logs JSON).

    Args:
        argv: ``--host`` (default all interfaces); ``sys.argv[1:]`` when None.

    A bad GATEWAY_* variable ends the process with one line naming it and exit code 2 (a bad
    argument too, from argparse). After SIGTERM, open streams get
    :data:`~services.gateway.settings.GRACEFUL_SHUTDOWN_SECONDS` to end.
    """
    parser = argparse.ArgumentParser(
        prog="python -m services.gateway", description="Serve the gateway.",
        epilog=f"Everything else comes from GATEWAY_* environment variables, for example {ENV_PORT} (default "
               f"{GatewaySettings.model_fields['port'].default}) and {ENV_UPSTREAM_URL} (default "
               f"{GatewaySettings.model_fields['upstream_url'].default}); the list and the rules are in "
               "services/gateway/settings.py.")
    parser.add_argument("--host", default=ALL_INTERFACES, help="address to listen on (default: all interfaces)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        "services.gateway.app:create_app",
        factory=True,
        host=args.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
