"""Operator tools for queue-autoscaled vLLM on EKS: local stack, dashboard, load test, QR, scaling math."""
