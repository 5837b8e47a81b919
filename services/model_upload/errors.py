"""Errors of the model copy: one line saying what failed and what to do.

Each error holds the ``problem`` (what failed, naming the repo, file, bucket or endpoint) and a
:class:`Remedy` with the advice for each :class:`Audience`: the operator at a shell
(``qvllm upload-model``, the local stack) and the deploy (the custom resource, whose reason
CloudFormation shows). ``str(err)`` is the shell's line; the handler reports
``err.reason(Audience.DEPLOY)``. Messages never contain the Hugging Face token (see
:func:`redact`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Audience(enum.Enum):
    """Who reads the error: an operator at a shell, or CloudFormation during a deploy."""

    CLI = "cli"
    DEPLOY = "deploy"


@dataclass(frozen=True)
class Remedy:
    """What to do, per audience (``cli``: flags and environment; ``deploy``: config and IAM)."""

    cli: str
    deploy: str

    @classmethod
    def same(cls, text: str) -> "Remedy":
        """The same advice for both audiences."""
        return cls(text, text)

    def for_audience(self, audience: Audience) -> str:
        """The advice for ``audience``."""
        return self.cli if audience is Audience.CLI else self.deploy


class UploadError(Exception):
    """Base class: a copy that cannot complete.

    Args:
        problem: what failed, naming what it failed on (one line).
        remedy: what to do; a plain string is the same advice for every audience.
    """

    def __init__(self, problem: str, remedy: Remedy | str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.remedy = Remedy.same(remedy) if isinstance(remedy, str) else remedy

    def reason(self, audience: Audience) -> str:
        """The one-line message for ``audience``: problem, then the advice."""
        text = self.problem
        if self.remedy is not None:
            text = f"{text}: {self.remedy.for_audience(audience)}"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.reason(Audience.CLI)


class ConfigurationError(UploadError):
    """A bad input (resource property, CLI option, pattern set that matches nothing)."""


class IncompleteModelError(UploadError):
    """The source's safetensors index names weight files that the copy would not contain."""


class SourceAuthError(UploadError):
    """401/403 from the hub: gated repo without a token, invalid token, or terms not accepted.

    Never retried: retrying an authorization failure only delays the error.
    """


class SourceNotFoundError(UploadError):
    """404 from the hub (repo, revision or file), or a missing local folder/file."""


class SourceNetworkError(UploadError):
    """The hub could not be reached, or kept answering 429/5xx, after retries with backoff."""


class StorageError(UploadError):
    """An S3 request failed (no such bucket, access denied, endpoint unreachable, wrong region)."""


class VerificationError(UploadError):
    """A copied file's size, sha256 (LFS) or git blob id differs from the source metadata."""


class LfsPointerError(VerificationError):
    """A weight file holds a Git LFS pointer stub instead of tensor data."""


def redact(text: str, secret: str | None) -> str:
    """Return ``text`` with every occurrence of ``secret`` replaced by ``***``.

    Belt and braces: no code path formats the token into a message, but upstream exception
    text (urllib3, botocore) is included in reasons and is passed through this first.
    """
    if secret:
        return text.replace(secret, "***")
    return text
