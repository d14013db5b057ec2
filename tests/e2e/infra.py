"""Helpers for the offline end-to-end tests: images, the Docker network, the moto container, SAM.

Everything goes through the ``docker`` and ``sam`` command lines (no Docker SDK), and every container
and network created here carries the label ``prescaler-e2e=1`` so that ``tests/e2e/docker.sh down``
finds and removes them whatever happened to the test run.

Topology::

    host (pytest, seed.py) --http://127.0.0.1:<published port>--> moto container (name "moto")
    sam local invoke --> Lambda container --http://moto:5000 (Docker DNS)--> moto container
                        both on the user-defined network "prescaler-e2e"

Functions here raise :class:`E2EError` with the tail of the failing command's output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("E2E_CACHE", ROOT / ".e2e-cache"))
LABEL_KEY, LABEL_VALUE = "prescaler-e2e", "1"
LABEL = f"{LABEL_KEY}={LABEL_VALUE}"
NETWORK = os.environ.get("E2E_NETWORK", "prescaler-e2e")
MOTO_NAME = os.environ.get("E2E_MOTO_NAME", "moto")
MOTO_CONTAINER_PORT = 5000
#: What a Lambda container on NETWORK puts in AWS_ENDPOINT_URL.
MOTO_URL_IN_NETWORK = f"http://{MOTO_NAME}:{MOTO_CONTAINER_PORT}"
REGION = "us-east-1"


class E2EError(RuntimeError):
    """A docker or sam command failed, or the moto server did not come up."""


def _run(cmd: list[str], *, timeout: float = 300, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise E2EError(
            f"{' '.join(cmd[:4])} ... exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def docker_available() -> bool:
    """True when a Docker engine answers ``docker info``."""
    if shutil.which("docker") is None:
        return False
    try:
        return _run(["docker", "info"], timeout=15, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def sam_executable() -> str:
    """The ``sam`` of the project venv, else the one on PATH."""
    venv_sam = ROOT / ".venv" / "bin" / "sam"
    if venv_sam.exists():
        return str(venv_sam)
    found = shutil.which("sam")
    if not found:
        raise E2EError("aws-sam-cli is not installed: .venv/bin/pip install aws-sam-cli")
    return found


@dataclass(frozen=True)
class Images:
    """Tags built by ``tests/e2e/images.sh build``."""

    base: str
    lambda_python311: str
    moto: str


def images(build: bool = True) -> Images:
    """The e2e image tags; runs ``images.sh build`` (a no-op when cached) unless ``build`` is False,
    in which case ``.e2e-cache/images.env`` from an earlier build is read."""
    env_file = CACHE / "images.env"
    if build:
        _run(["bash", str(HERE / "images.sh"), "build"], timeout=1200)
    if not env_file.exists():
        raise E2EError(f"{env_file} is missing: run tests/e2e/images.sh build")
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    return Images(values["E2E_BASE_IMAGE"], values["E2E_LAMBDA_IMAGE"], values["E2E_MOTO_IMAGE"])


def ensure_network(name: str = NETWORK) -> str:
    """Create the user-defined bridge network ``name`` (labelled) unless it exists."""
    if _run(["docker", "network", "inspect", name], check=False).returncode != 0:
        _run(["docker", "network", "create", "--label", LABEL, name])
    return name


def remove_network(name: str = NETWORK) -> None:
    """Remove the network if it exists (its containers must be gone)."""
    _run(["docker", "network", "rm", name], check=False)


@dataclass(frozen=True)
class Moto:
    """A running moto container: ``url`` for the host, ``url_in_network`` for other containers."""

    container: str
    url: str
    url_in_network: str
    network: str

    def reset(self) -> None:
        """Forget all state (``POST /moto-api/reset``)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
        time.sleep(0.3)
    raise E2EError(f"{url} did not answer within {timeout_s:.0f}s: {last}")


def start_moto(image: str, network: str = NETWORK, name: str = MOTO_NAME, timeout_s: float = 60) -> Moto:
    """Run the moto server image as container ``name`` on ``network``, its port published on
    127.0.0.1 only (a free port chosen by Docker), and wait until it answers.

    A container of the same name left by an earlier run is removed first.
    """
    ensure_network(network)
    _run(["docker", "rm", "-f", name], check=False)
    _run(
        [
            "docker", "run", "-d", "--name", name, "--label", LABEL, "--network", network,
            "-p", f"127.0.0.1::{MOTO_CONTAINER_PORT}", image,
        ]
    )  # fmt: skip
    published = _run(["docker", "port", name, f"{MOTO_CONTAINER_PORT}/tcp"]).stdout.split()
    host_port = next(p.rsplit(":", 1)[1] for p in published if p.startswith("127.0.0.1:"))
    moto = Moto(name, f"http://127.0.0.1:{host_port}", f"http://{name}:{MOTO_CONTAINER_PORT}", network)
    try:
        _wait_http(f"{moto.url}/moto-api/", timeout_s)
    except E2EError:
        logs = _run(["docker", "logs", "--tail", "40", name], check=False)
        stop_moto(name)
        raise E2EError(f"moto did not start:\n{logs.stdout}{logs.stderr}") from None
    return moto


def stop_moto(name: str = MOTO_NAME) -> None:
    """Remove the moto container if it exists."""
    _run(["docker", "rm", "-f", name], check=False)


def sam_env() -> dict[str, str]:
    """The environment for ``sam``: telemetry off, no real AWS profile or credentials leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAM_CLI_"))}
    env.update(
        SAM_CLI_TELEMETRY="0",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}"
    return env


def sam_build(
    template: Path,
    build_dir: Path,
    *,
    cache_dir: Path | None = None,
    cwd: Path | None = None,
    timeout_s: float = 900,
) -> Path:
    """``sam build`` of ``template`` into ``build_dir`` (no container: the host's python3.11 builds,
    pip fetching the layer's requirements); returns the built template's path.

    With ``cache_dir``, ``sam build --cached`` reuses functions and layers whose sources did not change.
    """
    cmd = [sam_executable(), "build", "--template-file", str(template), "--build-dir", str(build_dir)]
    if cache_dir is not None:
        cmd += ["--cached", "--cache-dir", str(cache_dir)]
    _run(cmd, cwd=cwd or template.parent, env=sam_env(), timeout=timeout_s)
    return build_dir / "template.yaml"


@dataclass(frozen=True)
class Invocation:
    """The outcome of one ``sam local invoke``: exit code, the function's response (parsed JSON when
    it is JSON), and sam's stdout/stderr (stderr holds the function's logs)."""

    returncode: int
    response: Any
    stdout: str
    stderr: str

    @property
    def function_error(self) -> bool:
        """True when the handler raised: the response is Lambda's ``errorType``/``errorMessage``."""
        return isinstance(self.response, dict) and "errorType" in self.response


def sam_local_invoke(
    template: Path,
    function: str,
    *,
    image: str,
    event: Path | None = None,
    env_vars: dict[str, dict[str, str]] | None = None,
    network: str = NETWORK,
    work_dir: Path,
    timeout_s: float = 300,
) -> Invocation:
    """Run ``sam local invoke FUNCTION`` in the stand-in image on ``network``.

    Args:
        template: a template (typically the one ``sam build`` wrote).
        function: the function's logical id.
        image: the stand-in Lambda image tag (``Images.lambda_python311``).
        event: an event JSON file; ``{}`` when None.
        env_vars: the ``--env-vars`` document, ``{"Parameters": {...}}`` for every function or
            ``{"<LogicalId>": {...}}``. SAM only overrides variables the template declares.
        work_dir: where the env-vars and empty-event files are written.

    Raises:
        E2EError: sam itself failed before the function ran (its exit code is 0 even when the
        handler raised; see :attr:`Invocation.function_error`).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    if event is None:
        event = work_dir / "empty-event.json"
        event.write_text("{}")
    cmd = [
        sam_executable(), "local", "invoke", function,
        "--template-file", str(template),
        "--event", str(event),
        "--invoke-image", image,
        "--skip-pull-image",
        "--docker-network", network,
        "--region", REGION,
    ]  # fmt: skip
    if env_vars:
        env_file = work_dir / f"env-{function}.json"
        env_file.write_text(json.dumps(env_vars))
        cmd += ["--env-vars", str(env_file)]
    proc = _run(cmd, cwd=template.parent, env=sam_env(), timeout=timeout_s, check=False)
    out = proc.stdout.strip()
    response: Any = None
    if out:
        last = out.splitlines()[-1]
        try:
            response = json.loads(last)
        except json.JSONDecodeError:
            response = last
    if proc.returncode != 0 and response is None:
        raise E2EError(f"sam local invoke {function} exited {proc.returncode}\n{proc.stderr[-4000:]}")
    return Invocation(proc.returncode, response, proc.stdout, proc.stderr)


def leftovers() -> dict[str, list[str]]:
    """Containers and networks with the e2e label that still exist (for the no-leftovers check)."""
    containers = _run(["docker", "ps", "-aq", "--filter", f"label={LABEL}"], check=False).stdout.split()
    networks = _run(["docker", "network", "ls", "-q", "--filter", f"label={LABEL}"], check=False).stdout.split()
    return {"containers": containers, "networks": networks}
