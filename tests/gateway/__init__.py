"""Gateway tests. A package so the real vLLM fixture is package-scoped."""
