"""Reusable constructs, one per file, each with typed props. Stacks compose them."""
