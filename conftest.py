"""Root pytest configuration: shared fixtures live in Testing/fixtures/ (one module per kind)."""
pytest_plugins = [
    "Testing.fixtures.data",
    "Testing.fixtures.models",
]
