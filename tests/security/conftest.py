"""The router service fixtures (real app, temp SQLite, manual clock) for the security tests."""

from tests.service.conftest import make_router, router  # noqa: F401 (fixtures)
