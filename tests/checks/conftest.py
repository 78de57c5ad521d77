"""What the checks see through the operating system's resolver, in namespaces of the test's own."""
import pytest

from tests.peers import system_resolver as peer


@pytest.fixture(scope="session")
def system_resolver(tmp_path_factory) -> dict:
    """The outcome of every scenario of tests/peers/system_resolver.py (one namespace for all)."""
    return peer.outcomes(tmp_path_factory.mktemp("resolver"))
