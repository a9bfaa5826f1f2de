"""A demo pipeline and its golden record (made once), for the in-process watch tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from parity.demo.scenarios import save_tokenizers

    root = tmp_path_factory.mktemp("watch-demo")
    save_tokenizers(root)
    return root


@pytest.fixture(scope="session")
def golden(demo_assets: Path) -> Path:
    import parity
    from parity.demo.scenarios import build_reference

    out = demo_assets / "golden"
    parity.record(build_reference(demo_assets / "tokenizer"), out=out, capture="full")
    return out


@pytest.fixture
def pipeline(demo_assets: Path) -> Any:
    """A fresh demo pipeline, the same model the golden record was made from."""
    from parity.demo.scenarios import build_reference

    return build_reference(demo_assets / "tokenizer")


@pytest.fixture
def registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@pytest.fixture
def make_watch(golden: Path, registry: Any, tmp_path: Path) -> Iterator[Any]:
    """parity.watch with test defaults (no background canary, a private registry); closed after."""
    import parity

    made: list[Any] = []

    def _make(target: Any, **kwargs: Any) -> Any:
        options: dict[str, Any] = {"canary_every": None, "canary_on_start": False, "registry": registry,
                                   "state_dir": tmp_path / "state", **kwargs}
        made.append(parity.watch(target, golden=options.pop("golden", golden), **options))
        return made[-1]

    yield _make
    for w in made:
        w.close()
