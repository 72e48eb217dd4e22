"""The Docker image, checked without a Docker engine (these machines have only the client).

The image is what its Dockerfile does, so this test does the same outside Docker: it
stages the Dockerfile's COPY sources in a temporary directory (a package the Dockerfile
forgets to copy is missing there too), runs the Dockerfile's `pip install` RUN lines in
that directory with a clean venv's pip, and runs `iskpi --help` and
`iskpi demo --no-serve --months 1` from that venv in an empty working directory. The
wheel built from the same staging directory must carry the dashboard's assets, the
migrations and the simulated CRMs, so `iskpi demo` works from an install.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
# The simulated CRMs move from connectors/demo/ to a top-level simulators/ package; the
# Dockerfile already copies simulators/. Until it exists only that COPY may be missing.
SIMULATORS = "simulators" if (ROOT / "simulators").is_dir() else "connectors/demo"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def packages() -> list[str]:
    """The top-level packages pyproject.toml puts in the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in include})


def copied() -> list[str]:
    return [shlex.split(rest)[0] for keyword, rest in instructions() if keyword == "COPY"]


def test_dockerfile_layers_volume_and_healthcheck() -> None:
    steps = instructions()
    keywords = [keyword for keyword, _ in steps]
    sources = copied()
    # Every package of the wheel is copied into the image.
    for package in packages():
        assert package in sources, f"the Dockerfile does not COPY {package}"
    # Dependencies first, in their own layer: pyproject.toml alone, deps installed from it,
    # then the sources, then the package without its dependencies.
    runs = [(i, rest) for i, (keyword, rest) in enumerate(steps) if keyword == "RUN"]
    deps = next(i for i, rest in runs if "pip install" in rest and "-r requirements.txt" in rest)
    install = next(i for i, rest in runs if "pip install" in rest and "--no-deps ." in rest)
    copies = [i for i, (keyword, _) in enumerate(steps) if keyword == "COPY"]
    assert steps[copies[0]][1].split()[0] == "pyproject.toml"
    assert copies[0] < deps < copies[1] and copies[-1] < install
    # The SQLite default on a volume the app user owns.
    env = " ".join(rest for keyword, rest in steps if keyword == "ENV")
    assert "ISKPI_DATABASE_URL=sqlite:////data/iskpi.db" in env
    assert ("VOLUME", "/data") in steps
    user = next(rest for keyword, rest in steps if keyword == "USER")
    assert any(f"chown {user}:{user} /data" in rest for keyword, rest in steps if keyword == "RUN")
    assert keywords.index("VOLUME") < keywords.index("USER")
    health = next(rest for keyword, rest in steps if keyword == "HEALTHCHECK")
    assert "--interval=" in health and "--timeout=" in health and "/healthz" in health


def stage(into: Path) -> None:
    """The build context as the Dockerfile's COPY lines see it."""
    for source in copied():
        path = ROOT / source
        if not path.exists():
            assert source == "simulators" and SIMULATORS == "connectors/demo", (
                f"the Dockerfile copies {source}, which does not exist"
            )
            continue
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            shutil.copytree(path, into / source, ignore=ignore)
        else:
            shutil.copy(path, into / source)


def clean_env(venv_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISKPI_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_as_the_dockerfile_does(tmp_path: Path) -> None:
    app, workdir, wheels, venv_dir = (tmp_path / name for name in ("app", "work", "wheels", "venv"))
    for folder in (app, workdir, wheels):
        folder.mkdir()
    stage(app)

    # The wheel has what `iskpi serve` and `iskpi demo` read at run time.
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."],
        app,
        {**os.environ},
    )
    (wheel,) = wheels.glob("iskpi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for pattern in ("*.html", "*.js", "*.css", "*.svg"):
        for asset in (ROOT / "service" / "dashboard").glob(pattern):
            assert f"service/dashboard/{asset.name}" in names
    for migration in ("alembic.ini", "env.py", "script.py.mako"):
        assert f"migrations/{migration}" in names
    versions = list((ROOT / "migrations" / "versions").glob("*.py"))
    assert versions and all(f"migrations/versions/{v.name}" in names for v in versions)
    simulators = list((ROOT / SIMULATORS).glob("*.py"))
    assert simulators and all(f"{SIMULATORS}/{s.name}" in names for s in simulators)

    # The Dockerfile's install steps, in the staged /app, with a clean venv's python and pip
    # first on PATH (pip's cache is allowed here: it changes nothing that is installed).
    venv.create(venv_dir, with_pip=True)
    env = clean_env(venv_dir)
    installs = [
        rest
        for keyword, rest in instructions()
        if keyword == "RUN" and ("pip install" in rest or "requirements.txt" in rest)
    ]
    assert len(installs) >= 2
    for command in installs:
        run(["bash", "-c", command.replace("--no-cache-dir", "")], app, env)

    # Run from an empty working directory: the installed package, not the sources.
    python = str(venv_dir / "bin" / "python")
    where = run([python, "-c", "import service, kpi; print(service.__file__)"], workdir, env)
    assert Path(where.strip()).is_relative_to(venv_dir), where
    iskpi = str(venv_dir / "bin" / "iskpi")
    assert "demo" in run([iskpi, "--help"], workdir, env)
    out = run([iskpi, "demo", "--no-serve", "--months", "1"], workdir, env)
    assert "sync #1: ok" in out, out
    assert (workdir / "iskpi-demo.db").stat().st_size > 0
