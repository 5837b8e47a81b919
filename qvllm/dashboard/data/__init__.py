"""Dashboard data layer: Prometheus text, Kubernetes API JSON, and the snapshot built from them."""
