"""Runtime code deployed by the CDK app (gateway, model upload, teardown)."""
