"""Fixtures for the e2e tests.

* ``e2e_images``: the image tags (builds them once, cached by content hash).
* ``moto_server``: one moto container for the session on the ``prescaler-e2e`` network.
* ``moto``: the same server, reset before the test.
* ``sam_work_dir``: a fresh folder for env-vars files and builds.
* ``project_build``: the project's own template.yaml after ``sam build`` (cached across runs in
  .e2e-cache/sam-cache; ``E2E_TEMPLATE`` may name another checkout's); skips while there is none.

Without a Docker engine the e2e tests are skipped, unless ``E2E_REQUIRED=1`` (set by run.sh), in
which case they fail: ``make e2e`` must never pass by running nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import infra


def _require_docker() -> None:
    if infra.docker_available():
        return
    message = "no Docker engine (start one with: bash tests/e2e/docker.sh up)"
    if os.environ.get("E2E_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def e2e_images() -> infra.Images:
    _require_docker()
    # run.sh has built them already; building again is a cache hit.
    return infra.images(build=os.environ.get("E2E_SKIP_IMAGE_BUILD") != "1")


@pytest.fixture(scope="session")
def moto_server(e2e_images: infra.Images) -> Iterator[infra.Moto]:
    server = infra.start_moto(e2e_images.moto)
    try:
        yield server
    finally:
        infra.stop_moto(server.container)
        infra.remove_network(server.network)


@pytest.fixture
def moto(moto_server: infra.Moto) -> infra.Moto:
    moto_server.reset()
    return moto_server


@pytest.fixture
def sam_work_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def project_build(e2e_images: infra.Images) -> Path:
    # E2E_TEMPLATE: another checkout's template (to try a change without touching this one).
    template = Path(os.environ.get("E2E_TEMPLATE", infra.ROOT / "template.yaml"))
    if not template.exists():
        pytest.skip(f"no {template} yet")
    build_dir = infra.CACHE / "sam-build"
    return infra.sam_build(template, build_dir, cache_dir=infra.CACHE / "sam-cache", cwd=template.parent)
