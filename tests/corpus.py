"""Where the shared real-mail corpus lives, and a clear skip when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

# CI and every developer have it at ../shared/corpus from the repo root; a fresh clone does not.
CORPUS: Path = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def require_corpus() -> Path:
    """The corpus root, or skip the test saying where it was expected."""
    if not (CORPUS / "README.md").is_file():
        pytest.skip(f"real test corpus not found at {CORPUS} (expected ../shared/corpus from the repo root)")
    return CORPUS
