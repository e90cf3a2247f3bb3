"""Helpers the test modules share (plain functions and classes; fixtures live in conftest.py
files). Importable as `tests.support.*` because pytest puts the project root on sys.path
(`pythonpath` in pyproject.toml)."""
