"""Teardown custom-resource handler (Lambda runtime code: stdlib + boto3/botocore + urllib3)."""
