"""Shared pytest configuration: the fixtures for real components live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.kube",
    "tests.fixtures.openbao",
    "tests.fixtures.postgres",
]
