"""Run a command the way the vLLM pod runs: as a non-root UID, on a read-only root filesystem
whose only writable paths are the pod's emptyDir volumes, with no capabilities and no privilege
escalation.

The command runs in its own mount namespace (``unshare -m``, util-linux; needs root to set up,
like a container runtime): the host's root is bind-mounted read-only at a new root folder, a fresh
tmpfs is mounted at every writable path (the chart's :data:`k8s_charts.vllm.WRITABLE_PATHS`:
``/dev/shm``, the home folder, ``/tmp``), the model folder is bind-mounted read-only at
:data:`MODEL_MOUNT`, and ``chroot`` + ``setpriv`` drop to the UID/GID with an empty capability
bounding set and ``no_new_privs`` (what ``allowPrivilegeEscalation: false`` sets). A write
anywhere else fails with ``EROFS`` / ``EACCES``, as it would in the pod. The mounts disappear
with the namespace when the process ends; nothing on the host changes.

The engine venv's base interpreter may live under a folder other users cannot enter (pyenv in
``/root``, mode 0700): that folder is covered by a tmpfs inside the namespace and the
interpreter's prefix bind-mounted back read-only, so the UID can run it, as it runs the image's
Python in the pod.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MODEL_MOUNT = "/srv/model"  # read-only, like the weights the streamer reads (never written)


class ConfinementUnavailable(RuntimeError):
    """The machine cannot set up the namespace (not root, or util-linux tools missing)."""


def _untraversable_ancestor(path: Path) -> Path | None:
    """The highest ancestor of ``path`` that other users may not enter (no ``o+x``), if any."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None


@dataclass(frozen=True)
class PodConfinement:
    """The pod's filesystem and identity for one command (see the module docstring).

    Attributes:
        root: an empty folder on the host that becomes the new root (inside the namespace only).
        uid: the UID and GID to run as (the pod's ``runAsUser``/``runAsGroup``).
        writable_paths: paths that get a fresh, empty tmpfs (the pod's emptyDir volumes).
        readable: host paths the command must be able to read: the engine venv and its base
            interpreter (each made reachable if an ancestor is closed to other users).
    """

    root: Path
    uid: int
    writable_paths: tuple[str, ...]
    readable: tuple[Path, ...] = field(default_factory=tuple)

    def wrap(self, command: Sequence[str], model_dir: Path, env: Mapping[str, str]) -> list[str]:
        """``command`` run confined with exactly the environment ``env`` (a pod has none of the
        host's variables); ``model_dir`` appears read-only at :data:`MODEL_MOUNT`. Not root: the
        set-up runs through ``sudo -n`` (GitHub's runners allow it without a password).

        Raises:
            ConfinementUnavailable: neither root nor password-less sudo, or ``unshare``/``setpriv``/
                ``chroot`` missing.
        """
        missing = [tool for tool in ("unshare", "setpriv", "chroot", "mount") if shutil.which(tool) is None]
        if missing:
            raise ConfinementUnavailable(f"util-linux/coreutils tools missing: {missing}")
        r = shlex.quote(str(self.root))
        lines = [
            "set -eu",
            f"mount --rbind / {r}",
            f"mount -o remount,bind,ro {r}",
        ]
        # Folders closed to other users (e.g. /root): a tmpfs over them inside the namespace, and
        # only the needed prefixes bound back, read-only.
        covered: set[Path] = set()
        for path in self.readable:
            closed = _untraversable_ancestor(path)
            if closed is None:
                continue
            if closed not in covered:
                lines.append(f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(str(self.root) + str(closed))}")
                covered.add(closed)
            target = shlex.quote(str(self.root) + str(path))
            lines += [f"mkdir -p {target}", f"mount --rbind {shlex.quote(str(path))} {target}",
                      f"mount -o remount,bind,ro {target}"]
        for closed in covered:
            lines.append(f"mount -o remount,ro {shlex.quote(str(self.root) + str(closed))}")
        model = shlex.quote(str(self.root) + MODEL_MOUNT)
        lines += [
            f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(str(self.root) + str(Path(MODEL_MOUNT).parent))}",
            f"mkdir -p {model}",
            f"mount --bind {shlex.quote(str(model_dir))} {model}",
            f"mount -o remount,bind,ro {model}",
            f"mount -o remount,ro {shlex.quote(str(self.root) + str(Path(MODEL_MOUNT).parent))}",
        ]
        mounted: list[Path] = []
        for writable in sorted(self.writable_paths):
            target = shlex.quote(str(self.root) + writable)
            parent = Path(writable).parent
            if any(m in Path(writable).parents for m in mounted):
                # Inside another writable path (a claim mounted in scratch): a mount point there.
                lines += [f"mkdir -p {target}", f"mount -t tmpfs -o mode=1777 tmpfs {target}"]
            elif not Path(writable).exists():
                # e.g. /home/vllm: the image has no such folder; a tmpfs over its parent holds it
                # (read-only again once the mount point exists).
                lines += [f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(str(self.root) + str(parent))}",
                          f"mkdir -p {target}",
                          f"mount -t tmpfs -o mode=1777 tmpfs {target}",
                          f"mount -o remount,ro {shlex.quote(str(self.root) + str(parent))}"]
            else:
                lines.append(f"mount -t tmpfs -o mode=1777 tmpfs {target}")
            mounted.append(Path(writable))
        # A readable path inside a writable one (a clone under /tmp, whose venv a fresh /tmp would
        # hide): bound back read-only on top of the tmpfs.
        for path in self.readable:
            if any(w == path or w in path.parents for w in mounted):
                target = shlex.quote(str(self.root) + str(path))
                lines += [f"mkdir -p {target}", f"mount --rbind {shlex.quote(str(path))} {target}",
                          f"mount -o remount,bind,ro {target}"]
        lines.append(
            f'exec chroot {r} setpriv --reuid={self.uid} --regid={self.uid} --clear-groups '
            '--no-new-privs --bounding-set=-all --inh-caps=-all -- env -i "$@"'
        )
        environment = [f"{k}={v}" for k, v in env.items()]
        return [*as_root(), "unshare", "--mount", "--propagation", "private", "bash", "-c", "\n".join(lines), "pod",
                *environment, *command]


def as_root() -> list[str]:
    """The prefix that runs a command as root: nothing when we are root, else ``sudo -n``.

    Raises:
        ConfinementUnavailable: neither root nor password-less sudo.
    """
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n", "--"]
    raise ConfinementUnavailable("setting up the pod's mounts needs root or password-less sudo (like a container runtime)")


def venv_readable(venv: Path) -> tuple[Path, ...]:
    """What a confined process needs to read to run ``venv``'s Python: the venv and its base
    interpreter's prefix (``pyvenv.cfg`` ``home`` is that prefix's ``bin/``)."""
    cfg = (venv / "pyvenv.cfg").read_text().splitlines()
    home = next(line.split("=", 1)[1].strip() for line in cfg if line.split("=", 1)[0].strip() == "home")
    return Path(home).resolve().parent, venv.resolve()


def process_identity(pid: int) -> Mapping[str, str]:
    """``Uid``, ``Gid``, ``CapEff``, ``CapBnd`` and ``NoNewPrivs`` of a running process (from
    ``/proc/<pid>/status``)."""
    wanted = {"Uid", "Gid", "CapEff", "CapBnd", "NoNewPrivs"}
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            out[key] = value.split()[0] if key in {"Uid", "Gid"} else value.strip()
    return out
