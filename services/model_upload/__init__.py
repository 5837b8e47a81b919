"""Model upload: copy a Hugging Face repo (or a local folder) into the model bucket.

* :mod:`.copy` - the library: :func:`~.copy.copy_model`, :func:`~.copy.copy_step` (plan ->
  transfer -> finish), used by the CLI, the local stack and the Lambda handler.
* :mod:`.contract` - S3 layout, Lambda environment and sizing, shared with the app.
* :mod:`.plan`, :mod:`.transfer`, :mod:`.resume`, :mod:`.verify`, :mod:`.sha256state` - the parts
  of a step; :mod:`.store` - every S3 call; :mod:`.sources` - the hub and local folders;
  :mod:`.retry` - backoff; :mod:`.errors` - one-line errors with advice per audience.
* :mod:`.handler` - the CloudFormation custom resource (CDK Provider framework
  ``on_event`` + ``is_complete``).

Runtime code: stdlib + boto3/botocore + urllib3 only (what the Lambda Python runtime carries).
"""
