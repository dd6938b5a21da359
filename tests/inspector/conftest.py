"""Fixtures shared by the inspector's browser tests."""

import pytest

from aquasurf_core.inspector.driver import find_browser


@pytest.fixture
def chromium() -> str:
    """The Chromium executable; the test is skipped, saying why, when there is none."""
    try:
        return find_browser()
    except FileNotFoundError as err:
        pytest.skip(f"no Chromium for the browser test: {err}")
