"""Fixtures and helpers the test modules share; no test module imports another."""
