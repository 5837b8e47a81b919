"""Gateway tests (issue 5). A package so the real vLLM fixture is package-scoped."""
