"""``python -m services.gateway``: serve the gateway with uvicorn on ``GATEWAY_PORT`` (all interfaces)."""

from __future__ import annotations

import sys

import uvicorn

from services.gateway.settings import SettingsError, load_settings


def main() -> None:
    """Run uvicorn in factory mode (uvloop and httptools, no access log: the app logs JSON).

    A bad GATEWAY_* variable ends the process with one line naming it and exit code 2.
    """
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        "services.gateway.app:create_app",
        factory=True,
        host="0.0.0.0",  # noqa: S104 - container port behind the ALB
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=30,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
