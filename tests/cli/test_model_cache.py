"""The prepared-model cache: built once, verified by sha256 on every use, rebuilt only when a
file is missing, changed or added. The build function here writes a small folder; the real
one (the GGUF conversion) runs in the engine tests."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from qvllm.local.model_cache import cache_root, digest_path, ensure_prepared, verify


class Builder:
    """Writes two files and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, out):  # type: ignore[no-untyped-def]
        self.calls += 1
        (out / "config.json").write_text('{"model_type": "llama"}')
        (out / "weights").mkdir()
        (out / "weights" / "model.safetensors").write_bytes(b"\x00" * 1000)


def test_built_once_then_reused(tmp_path):
    build, folder = Builder(), tmp_path / "models" / "m"
    first = ensure_prepared(folder, build)
    assert first.built and build.calls == 1 and first.reason == (f"no digest file {digest_path(folder)}",)
    second = ensure_prepared(folder, build)
    assert not second.built and build.calls == 1 and second.path == folder
    # the digest file is sha256sum's format, relative to the folder
    lines = digest_path(folder).read_text().splitlines()
    expected = hashlib.sha256(b"\x00" * 1000).hexdigest()
    assert f"{expected}  weights/model.safetensors" in lines
    check = subprocess.run(["sha256sum", "-c", str(digest_path(folder))], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda f: (f / "weights" / "model.safetensors").write_bytes(b"\x01" * 1000),
         "weights/model.safetensors: sha256 differs"),
        (lambda f: (f / "config.json").unlink(), "config.json: missing"),
        (lambda f: (f / "extra.bin").write_bytes(b"x"), "extra.bin: not in the digest file"),
        (lambda f: digest_path(f).unlink(), "no digest file"),
    ],
    ids=["changed", "missing", "added", "no-digests"],
)
def test_wrong_or_missing_files_are_prepared_again(tmp_path, damage, problem):
    build, folder = Builder(), tmp_path / "m"
    ensure_prepared(folder, build)
    damage(folder)
    assert any(problem in p for p in verify(folder)), verify(folder)
    again = ensure_prepared(folder, build)
    assert again.built and build.calls == 2 and any(problem in r for r in again.reason)
    assert verify(folder) == [] and not (folder / "extra.bin").exists()


def test_a_failed_build_keeps_the_previous_folder(tmp_path):
    build, folder = Builder(), tmp_path / "m"
    ensure_prepared(folder, build)
    (folder / "config.json").write_text("changed")

    def broken(out):  # type: ignore[no-untyped-def]
        (out / "partial").write_text("half")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        ensure_prepared(folder, broken)
    assert (folder / "config.json").read_text() == "changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.sha256"]  # no half-built folder left


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("QVLLM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "qvllm"
    monkeypatch.setenv("QVLLM_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"
