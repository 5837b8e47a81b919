"""The `qvllm` console entry point.

Subcommands are imported lazily, so `qvllm qr ...` does not pay for Textual or Locust.
Each entry maps a subcommand name to the module in :mod:`qvllm.commands` that defines it.
"""

from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, str] = {
    "local": "qvllm.commands.local",
    "dashboard": "qvllm.commands.dashboard",
    "loadtest": "qvllm.commands.loadtest",
    "qr": "qvllm.commands.qr",
    "scale-math": "qvllm.commands.scale_math",
    "simulate": "qvllm.commands.simulate",
    "upload-model": "qvllm.commands.upload_model",
    "tiny-model": "qvllm.commands.tiny_model",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(module_name)
        return module.command


@click.group(cls=LazyGroup)
@click.version_option(package_name="qvllm")
def main() -> None:
    """Operate queue-autoscaled vLLM: locally, or against the EKS deployment."""


if __name__ == "__main__":
    main()
