"""A minimal Kubernetes REST client for the teardown handler (urllib3 + botocore, no kubectl).

Authentication follows the aws-iam-authenticator recipe that ``aws eks get-token`` uses
(kubernetes-sigs/aws-iam-authenticator README, "API Authorization from Outside a Cluster"):
presign an STS ``GetCallerIdentity`` GET request whose signed headers include
``x-k8s-aws-id: <cluster name>``, valid 60 s, then send
``Authorization: Bearer k8s-aws-v1.<base64url(presigned URL) without padding>``.
The cluster endpoint and CA come from ``eks:DescribeCluster``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_EXPIRES_SECONDS = 60  # the authenticator rejects presigned URLs older than 15 min; 60 s is what aws eks get-token uses

KARPENTER_GROUP = "karpenter.sh"
KARPENTER_VERSION = "v1"
NODEPOOL_LABEL = "karpenter.sh/nodepool"  # on every NodeClaim, value = its NodePool's name


class KubeError(RuntimeError):
    """A Kubernetes API call failed. ``status`` is the HTTP status (0 for connection errors)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def eks_token(session: Any, cluster_name: str, region: str) -> str:
    """A bearer token for the EKS API server, from the caller's AWS credentials.

    Args:
        session: a ``boto3.Session`` (its credentials sign the request).
        cluster_name: EKS cluster name; signed as the ``x-k8s-aws-id`` header.
        region: region of the STS endpoint to presign against.

    Returns:
        ``k8s-aws-v1.<base64url of the presigned GetCallerIdentity URL, padding stripped>``.
    """
    from botocore.signers import RequestSigner

    sts = session.client("sts", region_name=region)
    signer = RequestSigner(
        sts.meta.service_model.service_id,
        region,
        "sts",
        "v4",
        session.get_credentials(),
        session.events,
    )
    request = {
        "method": "GET",
        "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        "body": {},
        "headers": {CLUSTER_ID_HEADER: cluster_name},
        "context": {},
    }
    url = signer.generate_presigned_url(
        request, region_name=region, expires_in=TOKEN_EXPIRES_SECONDS, operation_name=""
    )
    encoded = base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")
    return TOKEN_PREFIX + encoded


def describe_endpoint(eks_client: Any, cluster_name: str) -> tuple[str, str | None]:
    """``(https endpoint, CA bundle PEM)`` of a cluster from ``eks:DescribeCluster``."""
    cluster = eks_client.describe_cluster(name=cluster_name)["cluster"]
    ca_b64 = (cluster.get("certificateAuthority") or {}).get("data")
    ca_pem = base64.b64decode(ca_b64).decode("ascii") if ca_b64 else None
    return cluster["endpoint"], ca_pem


@dataclass(frozen=True)
class Named:
    """A Kubernetes object reduced to what teardown reports: kind and name (+ its NodePool)."""

    kind: str
    name: str
    nodepool: str | None = None


class KubeClient:
    """Plain REST calls against one API server.

    Args:
        endpoint: ``https://...`` (or ``http://`` in tests) without a trailing slash.
        token: bearer token (see :func:`eks_token`).
        ca_pem: CA bundle the server certificate must chain to (None: system CAs / plain HTTP).
        timeout_seconds: connect and read timeout per request.
    """

    def __init__(self, endpoint: str, token: str, ca_pem: str | None = None, timeout_seconds: float = 10.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        kwargs: dict[str, Any] = {"timeout": urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
                                  "retries": urllib3.Retry(total=2, backoff_factor=0.5, allowed_methods=None,
                                                           status_forcelist=(502, 503, 504))}
        if ca_pem:
            kwargs.update(cert_reqs="CERT_REQUIRED", ca_cert_data=ca_pem)
        self._http = urllib3.PoolManager(**kwargs)

    def _call(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
        url = self.endpoint + path + (f"?{urlencode(query, quote_via=quote)}" if query else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(method, url, body=data, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(f"{method} {path}: cannot reach the API server at {self.endpoint} ({exc})") from exc
        try:
            payload = json.loads(response.data or b"{}")
        except ValueError:
            payload = {"message": response.data[:200].decode("utf-8", "replace")}
        return response.status, payload

    def _cluster_path(self, plural: str, name: str | None = None) -> str:
        path = f"/apis/{KARPENTER_GROUP}/{KARPENTER_VERSION}/{plural}"
        return f"{path}/{quote(name, safe='')}" if name else path

    def _list(self, plural: str, kind: str, label_selector: str | None) -> list[Named]:
        query = {"labelSelector": label_selector} if label_selector else None
        status, payload = self._call("GET", self._cluster_path(plural), query)
        if status == 404:
            return []  # the CRD is not installed (never was, or already removed): nothing to wait for
        if status != 200:
            raise KubeError(f"GET {plural}: HTTP {status}: {payload.get('message', payload)}", status)
        items = payload.get("items") or []
        return [
            Named(kind, item["metadata"]["name"], (item["metadata"].get("labels") or {}).get(NODEPOOL_LABEL))
            for item in items
        ]

    def list_nodepools(self) -> list[Named]:
        """All ``karpenter.sh/v1`` NodePools (cluster-scoped). Empty when the CRD is absent."""
        return self._list("nodepools", "NodePool", None)

    def list_nodeclaims(self, nodepools: tuple[str, ...]) -> list[Named]:
        """NodeClaims labelled ``karpenter.sh/nodepool in (<nodepools>)``. Empty when the CRD is absent."""
        selector = f"{NODEPOOL_LABEL} in ({','.join(nodepools)})" if nodepools else None
        return self._list("nodeclaims", "NodeClaim", selector)

    def delete_nodepool(self, name: str) -> bool:
        """Delete one NodePool (foreground propagation). True if it existed, False on 404.

        Raises:
            KubeError: any other status, with the API server's message.
        """
        status, payload = self._call(
            "DELETE",
            self._cluster_path("nodepools", name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"},
        )
        if status in (200, 202):
            return True
        if status == 404:
            return False
        raise KubeError(f"DELETE nodepools/{name}: HTTP {status}: {payload.get('message', payload)}", status)
