"""Stand-ins for the upstream chart registries on loopback: a real OCI registry (CNCF distribution,
Debian's ``docker-registry``) and a classic Helm chart repository (static files over HTTPS), both
reached under the upstream host names (``public.ecr.aws``, ``ghcr.io``, ``kedacore.github.io``, ...).

How the host names are mapped: a small HTTP ``CONNECT`` proxy on loopback tunnels every
connection to an OCI host to the registry and every connection to a chart-repository host to the
static server. Programs written in Go (Helm) honour ``HTTPS_PROXY``, so the real ``helm pull
oci://public.ecr.aws/karpenter/karpenter-crd`` runs unchanged; TLS is real too: one test CA
signs a certificate whose subjectAltNames are the upstream host names, and ``SSL_CERT_FILE``
points Helm at that CA. Nothing leaves the machine; a host that is not mapped is refused.

Usage::

    with LoopbackRegistries(workdir, oci_hosts=["public.ecr.aws"], repo_hosts=["kedacore.github.io"],
                            helm=helm_binary) as registries:
        registries.publish("oci://public.ecr.aws/karpenter/karpenter-crd", "1.14.1")
        registries.publish("https://kedacore.github.io/charts", "2.20.2", chart="keda")
        subprocess.run([helm, "pull", ...], env=registries.env(base_env))

Errors: :class:`RegistryStartError` when ``docker-registry`` is missing or does not answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import ipaddress
import os
import select
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.serving import serve_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]
# `make deps-registry` unpacks Debian's docker-registry here; an installed one is used otherwise.
REGISTRY_BINARY = next(
    (str(p) for p in (REPO_ROOT / ".tools" / "docker-registry",) if p.exists()),
    shutil.which("docker-registry") or str(REPO_ROOT / ".tools" / "docker-registry"),
)


class RegistryStartError(RuntimeError):
    """The loopback registry, chart server or proxy did not come up."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# TLS: one CA, one server certificate for every mapped host name
# ---------------------------------------------------------------------------------------------
def write_tls_files(directory: Path, hosts: Sequence[str]) -> tuple[Path, Path, Path]:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` for ``hosts`` (plus 127.0.0.1) into ``directory``.

    Returns:
        (CA certificate, server certificate chain, server key) paths.
    """
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qvllm deploy rehearsal CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in hosts]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_path.read_bytes())
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


# ---------------------------------------------------------------------------------------------
# CONNECT proxy: upstream host name -> loopback port
# ---------------------------------------------------------------------------------------------
class _ProxyServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    routes: Mapping[str, int] = {}
    log: list[str]


class _ConnectHandler(socketserver.StreamRequestHandler):
    """Answers ``CONNECT host:443`` by tunnelling to the loopback port mapped to ``host``."""

    def handle(self) -> None:
        server: _ProxyServer = self.server  # type: ignore[assignment]
        request_line = self.rfile.readline(65537).decode("latin-1").strip()
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # headers are not needed
        parts = request_line.split()
        host = parts[1].rsplit(":", 1)[0] if len(parts) == 3 and parts[0] == "CONNECT" else None
        server.log.append(request_line)
        if host is None or host not in server.routes:
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", server.routes[host]), timeout=10)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        client = self.connection
        with upstream:
            sockets = [client, upstream]
            while True:
                readable, _, broken = select.select(sockets, [], sockets, 60)
                if broken or not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)


# ---------------------------------------------------------------------------------------------
# Classic chart repository: static files per host, over HTTPS
# ---------------------------------------------------------------------------------------------
def _static_handler(root: Path) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:  # noqa: D401 - http.server API
            host = (self.headers.get("Host") or "").split(":")[0]
            return str(root / host / path.split("?", 1)[0].lstrip("/"))

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server API
            pass

    return Handler


class _ThreadingHTTPSServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


# ---------------------------------------------------------------------------------------------
class LoopbackRegistries:
    """The OCI registry, the chart-repository server and the proxy that maps host names to them.

    Args:
        workdir: scratch directory (registry storage, TLS files, chart packages).
        oci_hosts: OCI registry host names to serve (``public.ecr.aws``, ``ghcr.io``).
        repo_hosts: classic chart-repository host names to serve (``kedacore.github.io``).
        helm: path of the ``helm`` binary used to package and push the charts.
    """

    def __init__(self, workdir: Path, *, oci_hosts: Sequence[str], repo_hosts: Sequence[str], helm: Path) -> None:
        self.workdir = workdir
        self.oci_hosts = tuple(oci_hosts)
        self.repo_hosts = tuple(repo_hosts)
        self.helm = helm
        self.repo_root = workdir / "chart-repos"
        self.proxy_log: list[str] = []
        self._stack = contextlib.ExitStack()
        self.ca_file = workdir / "tls" / "ca.pem"
        self.proxy_url = ""

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> "LoopbackRegistries":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        if not Path(REGISTRY_BINARY).exists():
            raise RegistryStartError(
                f"{REGISTRY_BINARY} not found: run `make deps-registry` (make test does)"
            )
        self.ca_file, cert, key = write_tls_files(self.workdir / "tls", [*self.oci_hosts, *self.repo_hosts])
        registry_port = self._start_registry(cert, key)
        repo_port = self._start_chart_server(cert, key)
        routes = {host: registry_port for host in self.oci_hosts} | {host: repo_port for host in self.repo_hosts}
        self._start_proxy(routes)

    def _start_registry(self, cert: Path, key: Path) -> int:
        port = free_port()
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "registry")}},
            "http": {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(cert), "key": str(key)}},
        }
        config_file = self.workdir / "registry.yml"
        config_file.write_text(yaml.safe_dump(config))
        log = open(self.workdir / "registry.log", "wb")  # noqa: SIM115 - closed by the exit stack
        self._stack.callback(log.close)
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_file)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._stack.callback(_stop, process)
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                        tls.sendall(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                        if b" 200 " in tls.recv(64):
                            return port
            except OSError:
                time.sleep(0.2)
        tail = (self.workdir / "registry.log").read_text(errors="replace")[-2000:]
        raise RegistryStartError(f"docker-registry did not answer on 127.0.0.1:{port}: {tail}")

    def _start_chart_server(self, cert: Path, key: Path) -> int:
        self.repo_root.mkdir(parents=True, exist_ok=True)
        server = _ThreadingHTTPSServer(("127.0.0.1", 0), _static_handler(self.repo_root))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        serve_in_thread(server)
        self._stack.callback(server.server_close)
        self._stack.callback(server.shutdown)
        return server.server_address[1]

    def _start_proxy(self, routes: dict[str, int]) -> None:
        server = _ProxyServer(("127.0.0.1", 0), _ConnectHandler)
        server.routes = routes
        server.log = self.proxy_log
        serve_in_thread(server)
        self._stack.callback(server.server_close)
        self._stack.callback(server.shutdown)
        self.proxy_url = f"http://127.0.0.1:{server.server_address[1]}"

    # -- use ------------------------------------------------------------------------------
    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus what a Go or Python client needs to reach the mapped hosts (proxy, test CA)."""
        cert_dir = self.workdir / "tls" / "no-system-certs"
        cert_dir.mkdir(exist_ok=True)
        out = {k: v for k, v in base.items() if k.upper() not in ("NO_PROXY", "HTTP_PROXY", "ALL_PROXY")}
        out |= {
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "NO_PROXY": "",
            "no_proxy": "",
            "SSL_CERT_FILE": str(self.ca_file),
            "SSL_CERT_DIR": str(cert_dir),
        }
        return out

    def publish(self, url: str, version: str, *, chart: str | None = None, files: Mapping[str, str] | None = None) -> None:
        """Package a minimal chart and publish it where ``url`` says, as upstream does.

        Args:
            url: ``oci://HOST/PATH/NAME`` (the chart ``NAME`` is pushed to ``oci://HOST/PATH``,
                as ``helm push`` does) or ``https://HOST/PATH`` (a classic repository; ``chart``
                names the chart and ``index.yaml`` is regenerated).
            version: the chart version, exactly as upstream publishes it (``v0.1.4``, ``1.14.1``).
            chart: chart name for classic repositories (OCI: the last segment of ``url``).
            files: extra chart files, path relative to the chart folder -> content.
        """
        parts = urlsplit(url)
        name = chart if parts.scheme == "https" else parts.path.rsplit("/", 1)[-1]
        assert name, url
        source = self.workdir / "charts-src" / f"{name}-{version}" / name
        (source / "templates").mkdir(parents=True, exist_ok=True)
        (source / "Chart.yaml").write_text(
            yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version, "appVersion": version})
        )
        for relative, content in (files or {}).items():
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            (source / relative).write_text(content)
        if parts.scheme == "oci":
            packages = self.workdir / "packages"
            packages.mkdir(exist_ok=True)
            self._helm("package", str(source), "--destination", str(packages))
            package = packages / f"{name}-{version}.tgz"
            parent = url.rsplit("/", 1)[0]
            self._helm("push", str(package), parent)
        elif parts.scheme == "https":
            folder = self.repo_root / parts.netloc / parts.path.strip("/")
            folder.mkdir(parents=True, exist_ok=True)
            self._helm("package", str(source), "--destination", str(folder))
            self._helm("repo", "index", str(folder), "--url", url.rstrip("/"))
        else:
            raise ValueError(f"unsupported chart location {url!r}")

    def _helm(self, *args: str) -> str:
        env = self.env(os.environ) | helm_homes(self.workdir / "publisher")
        result = subprocess.run(
            [str(self.helm), *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RegistryStartError(f"helm {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout


def helm_homes(directory: Path) -> dict[str, str]:
    """Helm's cache/config/data/registry-config locations inside ``directory`` (no user state)."""
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "HELM_CACHE_HOME": str(directory / "cache"),
        "HELM_CONFIG_HOME": str(directory / "config"),
        "HELM_DATA_HOME": str(directory / "data"),
        "HELM_REGISTRY_CONFIG": str(directory / "registry.json"),
        "HELM_REPOSITORY_CONFIG": str(directory / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(directory / "repository-cache"),
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)

