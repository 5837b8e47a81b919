"""Model upload: copy a Hugging Face repo (or a local folder) into the model bucket.

* :mod:`.copy` - the library: :func:`~.copy.copy_model`, :func:`~.copy.copy_step`,
  :class:`~.copy.Manifest` (used by the CLI, the local stack and the Lambda handler).
* :mod:`.sources` - :class:`~.sources.HubSource` and :class:`~.sources.LocalSource`.
* :mod:`.handler` - the CloudFormation custom resource (CDK Provider framework
  ``on_event`` + ``is_complete``).

Runtime code: stdlib + boto3/botocore + urllib3 only (what the Lambda Python runtime carries).
"""
