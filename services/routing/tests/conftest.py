"""Fixtures shared by routing's tests."""

from __future__ import annotations

import pytest

from phoihop_common.config import load_reference
from phoihop_routing.classify import Classifier


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    """The classifier of the project's own deploy/config (built once: it compiles the rules)."""
    return Classifier.from_config(reference=load_reference())
