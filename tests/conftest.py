import logging
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: talks to a real process or component")
    config.addinivalue_line("markers", "e2e: builds and runs images with pack and Docker")


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Tests that run the CLI in-process get its log handler, bound to the stderr pytest
    captures for that test: removed afterwards, so no later test logs to a closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
