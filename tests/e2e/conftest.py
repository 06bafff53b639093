"""Shared by the end-to-end tests: the local stack on free ports (scripts/running_stack.py),
stopped at the end also when a test fails."""

import contextlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import running_stack  # noqa: E402


@contextlib.contextmanager
def local_stack(logs, **env_overrides):
    """Yields the fields of the stack's `ready ...` line (running_stack.local_stack)."""
    try:
        with running_stack.local_stack(logs, **env_overrides) as fields:
            yield fields
    except running_stack.StackDidNotStart as e:
        pytest.fail(str(e))
