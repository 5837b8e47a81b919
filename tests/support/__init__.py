"""Reusable test helpers (servers, builders). Each module has one owner area."""
