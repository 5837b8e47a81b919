"""The destination bucket: every S3 call of the copy goes through :class:`Store`, which turns any
failure into one :class:`~.errors.StorageError` line naming the bucket, the key or prefix, the
endpoint and what to do.

botocore already retries throttling, 5xx and connection errors (its ``standard`` retry mode:
exponential backoff with jitter, https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html);
what reaches this module is final.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from .errors import Remedy, StorageError

_MISSING = ("404", "NoSuchKey", "NotFound")
_DENIED = ("AccessDenied", "403", "AllAccessDisabled", "AccountProblem", "InvalidObjectState")
_BAD_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                    "TokenRefreshRequired", "InvalidClientTokenId", "UnrecognizedClientException")
_WRONG_REGION = ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException",
                 "301", "IncorrectEndpoint")


def client_config(workers: int) -> Config:
    """botocore settings of the copy's S3 client: enough connections for ``2 * workers`` parts in
    flight plus the records and HEADs, a 10 s connect timeout, and botocore's ``standard`` retries
    (5 attempts)."""
    return Config(max_pool_connections=4 * workers, connect_timeout=10, read_timeout=120,
                  retries={"mode": "standard", "max_attempts": 5})


@dataclass(frozen=True)
class Part:
    """A part S3 holds for a multipart upload: ``number`` (1-based), ``size`` (bytes), ``etag``."""

    number: int
    size: int
    etag: str


class Store:
    """One bucket on one endpoint (a boto3 S3 client of any endpoint: AWS, moto, MinIO)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint = str(client.meta.endpoint_url)
        self.region = str(client.meta.region_name or "")

    # -- the one place S3 errors are translated ------------------------------------------
    def _call(self, operation: str, where: str, **params: Any) -> Any:
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, operation, where) from None

    def _error(self, exc: Exception, operation: str, where: str) -> StorageError:
        target = f"s3://{self.bucket}/{where}"
        at = f"at {self.endpoint}"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StorageError(f"no AWS credentials to call S3 {at} for {target}", Remedy(
                cli="configure credentials (aws configure / aws sso login, AWS_PROFILE, or AWS_ACCESS_KEY_ID "
                    "and AWS_SECRET_ACCESS_KEY)",
                deploy="the function's execution role gave no credentials; redeploy the ModelStore stack"))
        if isinstance(exc, BotoConnectionError):
            return StorageError(f"cannot reach the S3 endpoint {self.endpoint} ({operation} on {target}): {exc}",
                                Remedy(cli="check --endpoint-url (is the server running?), --region and the "
                                           "network route to S3, then run the command again",
                                       deploy="the function could not reach S3 in its region; retry the deploy"))
        if isinstance(exc, ParamValidationError):
            return StorageError(f"invalid S3 request for {target}: {exc}",
                                Remedy(cli="check --bucket and --prefix", deploy="check the bucket and model.name"))
        if not isinstance(exc, ClientError):
            return StorageError(f"S3 {operation} on {target} {at} failed: {exc}",
                                "run it again; if it persists, check the S3 endpoint")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or ""
        attempts = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        if code == "NoSuchBucket":
            return StorageError(f"bucket {self.bucket!r} does not exist {at}", Remedy(
                cli="check --bucket, --endpoint-url and --region, or create the bucket first",
                deploy="the model bucket is made by the ModelStore stack; it was deleted outside CloudFormation: "
                       "deploy the ModelStore stack again"))
        if code in _WRONG_REGION:
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            actual = headers.get("x-amz-bucket-region") or error.get("Region") or "another region"
            return StorageError(f"bucket {self.bucket!r} is in {actual}, not in {self.region or 'the client region'} "
                                f"({code} {at})", Remedy(
                                    cli=f"pass --region {actual}" if actual != "another region" else "pass --region",
                                    deploy="deploy the ModelStore stack in the bucket's region"))
        if code in _BAD_CREDENTIALS:
            return StorageError(f"S3 {at} rejected the AWS credentials ({code}) for {target}", Remedy(
                cli="refresh or fix the credentials (aws sso login, AWS_PROFILE)",
                deploy="the function's role credentials were rejected; retry the deploy"))
        if code in _DENIED:
            return StorageError(f"access denied: S3 {operation} on {target} {at} ({code}: {message})", Remedy(
                cli=f"use AWS credentials allowed to read, write and list s3://{self.bucket}/{where.split('/')[0]}/ "
                    f"(and to use the bucket's KMS key, if any)",
                deploy="the upload role (ModelStore.grant_write_model) lacks it, or a bucket policy, KMS key "
                       "policy or SCP denies it"))
        return StorageError(f"S3 {operation} on {target} {at} failed{tried}: {code}: {message}",
                            "run it again; if it persists, check the S3 endpoint's status")

    # -- objects --------------------------------------------------------------------------
    def list_keys(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix``: key -> size in bytes."""
        keys: dict[str, int] = {}
        token = None
        while True:
            params: dict[str, Any] = {"Prefix": prefix}
            if token:
                params["ContinuationToken"] = token
            page = self._call("list_objects_v2", prefix, **params)
            keys.update({o["Key"]: int(o["Size"]) for o in page.get("Contents", [])})
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return keys

    def head(self, key: str) -> dict[str, Any] | None:
        """HEAD ``key``: ``{"size", "metadata"}`` (metadata keys lower-cased), or ``None`` if absent."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                return None
            raise self._error(exc, "HeadObject", key) from None
        except BotoCoreError as exc:
            raise self._error(exc, "HeadObject", key) from None
        return {"size": int(head.get("ContentLength", -1)),
                "metadata": {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}}

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` if absent."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                return None
            raise self._error(exc, "GetObject", key) from None
        except BotoCoreError as exc:
            raise self._error(exc, "GetObject", key) from None

    def put(self, key: str, body: bytes, metadata: dict[str, str] | None = None,
            content_type: str | None = None) -> None:
        """PUT one object."""
        params: dict[str, Any] = {"Key": key, "Body": body}
        if metadata:
            params["Metadata"] = metadata
        if content_type:
            params["ContentType"] = content_type
        self._call("put_object", key, **params)

    def delete(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` (1000 per request)."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            resp = self._call("delete_objects", batch[0]["Key"], Delete={"Objects": batch, "Quiet": True})
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise StorageError(f"could not delete s3://{self.bucket}/{first.get('Key')} at {self.endpoint}: "
                                   f"{first.get('Code')}: {first.get('Message')}",
                                   "check the credentials' s3:DeleteObject permission on the model prefix")

    # -- multipart uploads ----------------------------------------------------------------
    def uploads(self, prefix: str) -> Iterator[tuple[str, str]]:
        """Unfinished multipart uploads under ``prefix``: ``(key, upload_id)``, oldest first per key."""
        params: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = self._call("list_multipart_uploads", prefix, **params)
            for upload in page.get("Uploads", []):
                yield upload["Key"], upload["UploadId"]
            if not page.get("IsTruncated"):
                return
            params = {"Prefix": prefix, "KeyMarker": page.get("NextKeyMarker", ""),
                      "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    def parts(self, key: str, upload_id: str) -> dict[int, Part] | None:
        """Parts held for an upload (``None`` if the upload is gone, e.g. expired by lifecycle)."""
        parts: dict[int, Part] = {}
        marker = 0
        while True:
            try:
                page = self.client.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              PartNumberMarker=marker)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                    return None
                raise self._error(exc, "ListParts", key) from None
            except BotoCoreError as exc:
                raise self._error(exc, "ListParts", key) from None
            for p in page.get("Parts", []):
                parts[int(p["PartNumber"])] = Part(int(p["PartNumber"]), int(p["Size"]), str(p["ETag"]))
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])

    def create_upload(self, key: str, metadata: dict[str, str]) -> str:
        """Start a multipart upload; returns its id."""
        return str(self._call("create_multipart_upload", key, Key=key, Metadata=metadata)["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes | bytearray) -> str:
        """Upload one part; returns its ETag."""
        return str(self._call("upload_part", key, Key=key, UploadId=upload_id, PartNumber=number, Body=body)["ETag"])

    def complete_upload(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        """Complete an upload from its parts' ETags (part numbers 1..n in order)."""
        parts = [{"PartNumber": i + 1, "ETag": etag} for i, etag in enumerate(etags)]
        self._call("complete_multipart_upload", key, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort an upload (its parts are freed); an upload already gone is fine."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise self._error(exc, "AbortMultipartUpload", key) from None
        except BotoCoreError as exc:
            raise self._error(exc, "AbortMultipartUpload", key) from None
