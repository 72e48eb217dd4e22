"""Demo benchmark: `scripts/demo.sh --no-serve` wall time, and start → first data when served.

    .venv/bin/python -m bench.demo_bench [--repeat 3] [--compare DIR]

*first data* is the time from starting `scripts/demo.sh --port N` to the first answer of
`GET /v1/kpis?kpi=calls&scope=org` (with the demo's read token) whose calls are not zero.
With ``--compare DIR`` each measurement also runs the checkout in DIR (with this
virtualenv), alternating with this one, and the ratios are printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
READ_TOKEN = "demo-read"


def _env(tree: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISKPI_")}
    if tree:
        env["PYTHONPATH"] = tree
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def no_serve_seconds(tree: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        subprocess.run(
            [
                "bash",
                str(ROOT / "scripts/demo.sh"),
                "--no-serve",
                "--database",
                f"sqlite:///{tmp}/d.db",
            ],
            env=_env(tree),
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - began


def first_data_seconds(tree: str | None, timeout: float = 300) -> float:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        demo = subprocess.Popen(
            ["bash", str(ROOT / "scripts/demo.sh"), "--port", str(port)]
            + ["--database", f"sqlite:///{tmp}/d.db"],
            env=_env(tree),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while time.perf_counter() - began < timeout:
                try:
                    answer = httpx.get(
                        f"http://127.0.0.1:{port}/v1/kpis",
                        params={"kpi": "calls", "scope": "org"},
                        headers={"Authorization": f"Bearer {READ_TOKEN}"},
                        timeout=10,
                    )
                    if answer.status_code == 200 and any(
                        row["value"] for row in answer.json()["data"]
                    ):
                        return time.perf_counter() - began
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            raise TimeoutError(f"no data within {timeout} s")
        finally:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", metavar="DIR", help="another checkout, measured alternately")
    args = parser.parse_args()
    trees: list[str | None] = [None] + ([os.path.abspath(args.compare)] if args.compare else [])
    figures: dict[str | None, dict[str, list[float]]] = {
        t: {"no_serve": [], "first_data": []} for t in trees
    }
    for i in range(args.repeat):
        for tree in trees if i % 2 == 0 else trees[::-1]:
            figures[tree]["no_serve"].append(no_serve_seconds(tree))
            figures[tree]["first_data"].append(first_data_seconds(tree))
            print(tree or "this checkout", {k: f"{v[-1]:.1f}" for k, v in figures[tree].items()})
    medians = {t: {k: statistics.median(v) for k, v in f.items()} for t, f in figures.items()}
    for tree, m in medians.items():
        print(
            f"{tree or 'this checkout'}: `demo.sh --no-serve` {m['no_serve']:.1f} s, "
            f"start → first data {m['first_data']:.1f} s (medians of {args.repeat})"
        )
    if len(trees) == 2:
        a, b = medians[trees[0]], medians[trees[1]]
        print(
            f"{trees[1]} ÷ this checkout: no-serve {b['no_serve'] / a['no_serve']:.2f}×, "
            f"first data {b['first_data'] / a['first_data']:.2f}×"
        )


if __name__ == "__main__":
    main()
