"""Runtime settings shared by every Lambda function of ours (the custom-resource handlers)."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_

# One Python runtime for all our handlers: their code needs only the stdlib, boto3 and urllib3,
# which this runtime carries, so synth needs no bundling (no Docker, no network).
PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_14  # the latest: cdk-nag AwsSolutions-L1
ARCHITECTURE = lambda_.Architecture.ARM_64  # Graviton: cheaper per GB-second, same code
