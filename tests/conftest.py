import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: talks to a real process or component")
    config.addinivalue_line("markers", "e2e: builds and runs images with pack and Docker")
