"""Load test: Locust stage profiles, the streaming chat user, and the pass/fail thresholds.

``profiles`` and ``thresholds`` do not import Locust (Locust monkey-patches the standard
library with gevent on import); only ``locustfile`` does, and it runs in its own process
(``python -m locust -f .../locustfile.py``) started by ``qvllm loadtest``.
"""
