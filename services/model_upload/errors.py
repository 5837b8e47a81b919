"""Errors of the model copy. Each carries a ``reason`` a user can act on.

The Lambda handler lets these propagate; the CDK Provider framework turns the exception
message into the ``Reason`` of the FAILED response to CloudFormation. Messages never contain
the Hugging Face token (see :func:`redact`).
"""

from __future__ import annotations


class UploadError(Exception):
    """Base class: a copy that cannot complete. ``str(err)`` is the user-facing reason."""


class ConfigurationError(UploadError):
    """A bad input (resource property, CLI option, pattern set that matches nothing)."""


class SourceAuthError(UploadError):
    """401/403 from the hub: gated repo without a token, invalid token, or terms not accepted.

    Never retried (case B18): retrying an authorization failure only delays the error.
    """


class SourceNotFoundError(UploadError):
    """404 from the hub (repo, revision or file), or a missing local folder/file."""


class SourceNetworkError(UploadError):
    """The hub could not be reached, or kept answering 429/5xx, after retries with backoff."""


class VerificationError(UploadError):
    """A copied file's size, sha256 (LFS) or git blob id differs from the source metadata."""


class LfsPointerError(VerificationError):
    """A weight file holds a Git LFS pointer stub instead of tensor data (case B19)."""


def redact(text: str, secret: str | None) -> str:
    """Return ``text`` with every occurrence of ``secret`` replaced by ``***``.

    Belt and braces: no code path formats the token into a message, but upstream exception
    text (urllib3, botocore) is included in reasons and is passed through this first.
    """
    if secret:
        return text.replace(secret, "***")
    return text
