"""VPC-origin wait custom-resource handler (Lambda runtime code: stdlib + boto3)."""
