"""Helpers shared by the tests: servers, seeds, invariants and workers. No test module imports another."""
