"""Recording stand-ins for what the kubectl handler calls and cannot reach here: ``aws``, and the
cluster side of ``helm`` and ``kubectl``. Invoked as ``python handler_stand_ins.py TOOL ARGS...``
through small scripts named ``aws``/``helm``/``kubectl`` first on the handler's PATH.

Every call appends one JSON line ``{"tool", "argv", "rc", ...}`` to ``$REHEARSAL_LOG``.

- ``aws eks update-kubeconfig --name N --kubeconfig K``: writes a kubeconfig whose server is an
  EKS-style host name that nothing serves (a stray API call fails instead of reaching anything).
  ``aws ecr get-login-password`` / ``aws ecr-public get-login-password``: prints a token. Anything
  else fails with "not rehearsed" so a new call in a future handler is noticed.
- ``helm upgrade ...``: the exact argv is recorded and checked by the real Helm's flag parser
  (``helm upgrade ARGV --help`` parses every flag and value and runs nothing); then the real
  ``helm template`` runs with the same release, chart, repository, version, values file and
  namespace (the install itself needs an API server). Its output is recorded as ``rendered``.
  ``helm uninstall ...``: recorded and flag-checked the same way. Every other helm command
  (``pull``, ``registry login``) runs the real Helm unchanged.
- ``kubectl create|apply|delete ... -f FILE``: recorded, flag-checked, and the real kubectl parses
  FILE offline (``kubectl label --local -f FILE -o json``, which decodes every object in file
  order and needs no server); the parsed objects are recorded as ``objects``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

KUBECONFIG_SERVER = "https://rehearsal-unreachable.gr7.eks.amazonaws.com"
LOGIN_TOKEN = "rehearsal-registry-token"


def record(entry: dict[str, Any]) -> None:
    with open(os.environ["REHEARSAL_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=240, **kwargs)


# ---------------------------------------------------------------------------------------------
def aws(argv: list[str]) -> int:
    if argv[:2] == ["eks", "update-kubeconfig"]:
        parser = argparse.ArgumentParser(prog="aws eks update-kubeconfig")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kubeconfig", required=True)
        parser.add_argument("--region")
        parser.add_argument("--role-arn")
        args = parser.parse_args(argv[2:])
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": args.name, "cluster": {"server": KUBECONFIG_SERVER}}],
            "contexts": [{"name": args.name, "context": {"cluster": args.name, "user": args.name}}],
            "users": [{"name": args.name, "user": {"token": "rehearsal"}}],
            "current-context": args.name,
        }
        Path(args.kubeconfig).write_text(json.dumps(config))
        record({"tool": "aws", "argv": argv, "rc": 0})
        return 0
    if argv[:2] in (["ecr", "get-login-password"], ["ecr-public", "get-login-password"]):
        print(LOGIN_TOKEN)
        record({"tool": "aws", "argv": argv, "rc": 0})
        return 0
    print(f"not rehearsed: aws {' '.join(argv)}", file=sys.stderr)
    record({"tool": "aws", "argv": argv, "rc": 2})
    return 2


# ---------------------------------------------------------------------------------------------
def _flag_check(real: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The real binary parses ``argv`` (every flag and value) and prints help instead of running."""
    return run([real, *argv, "--help"])


def _helm_upgrade_as_template(real: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    parser = argparse.ArgumentParser(prog="helm upgrade", add_help=False)
    parser.add_argument("release")
    parser.add_argument("chart")
    parser.add_argument("--install", action="store_true")
    parser.add_argument("--create-namespace", action="store_true")
    parser.add_argument("--repo")
    parser.add_argument("--values")
    parser.add_argument("--version")
    parser.add_argument("--namespace")
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--skip-crds", action="store_true")
    parser.add_argument("--timeout")
    parser.add_argument("--atomic", action="store_true")
    parser.add_argument("--kubeconfig")
    args, unknown = parser.parse_known_args(argv[1:])
    if unknown:
        raise SystemExit(f"helm stand-in: flags the rehearsal does not know: {unknown} in {argv}")
    template = [real, "template", args.release, args.chart]
    for flag, value in (
        ("--repo", args.repo),
        ("--version", args.version),
        ("--values", args.values),
        ("--namespace", args.namespace),
    ):
        if value is not None:
            template += [flag, value]
    if args.skip_crds:
        template.append("--skip-crds")
    return run(template)


def helm(argv: list[str]) -> int:
    real = os.environ["REHEARSAL_REAL_HELM"]
    verb = argv[0] if argv else ""
    if verb not in ("upgrade", "uninstall", "install", "rollback", "delete"):
        result = run([real, *argv])
        record({"tool": "helm", "argv": argv, "rc": result.returncode, "output": result.stdout + result.stderr})
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.returncode
    check = _flag_check(real, argv)
    entry: dict[str, Any] = {"tool": "helm", "argv": argv, "flags_ok": check.returncode == 0}
    if check.returncode != 0:
        entry |= {"rc": check.returncode, "output": check.stderr}
        record(entry)
        sys.stderr.write(check.stderr)
        return check.returncode
    if verb != "upgrade":
        record(entry | {"rc": 0})
        return 0
    result = _helm_upgrade_as_template(real, argv)
    entry |= {"rc": result.returncode, "rendered": result.stdout, "output": result.stderr}
    record(entry)
    sys.stdout.write(result.stdout if result.returncode else f"Release {argv[1]!r} rehearsed (helm template)\n")
    sys.stderr.write(result.stderr)
    return result.returncode


# ---------------------------------------------------------------------------------------------
def _decode_stream(text: str) -> list[dict[str, Any]]:
    decoder, objects, index = json.JSONDecoder(), [], 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            break
        obj, index = decoder.raw_decode(text, index)
        objects.extend(obj["items"] if obj.get("kind") == "List" else [obj])
    return objects


def kubectl(argv: list[str]) -> int:
    real = os.environ["REHEARSAL_REAL_KUBECTL"]
    check = _flag_check(real, argv)
    entry: dict[str, Any] = {"tool": "kubectl", "argv": argv, "flags_ok": check.returncode == 0}
    if check.returncode != 0:
        record(entry | {"rc": check.returncode, "output": check.stderr})
        sys.stderr.write(check.stderr)
        return check.returncode
    if "-f" not in argv:
        record(entry | {"rc": 2, "output": "not rehearsed"})
        print(f"not rehearsed: kubectl {' '.join(argv)}", file=sys.stderr)
        return 2
    manifest = argv[argv.index("-f") + 1]
    # Decode every object of the file, in file order, with no server (the label removal is a no-op).
    parsed = run([real, "label", "--local", "-f", manifest, "-o", "json", "qvllm.io/rehearsal-"])
    entry |= {"rc": parsed.returncode, "output": parsed.stderr}
    if parsed.returncode == 0:
        entry["objects"] = _decode_stream(parsed.stdout)
    record(entry)
    sys.stderr.write(parsed.stderr)
    return parsed.returncode


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    return {"aws": aws, "helm": helm, "kubectl": kubectl}[tool](argv)


if __name__ == "__main__":
    sys.exit(main())
