"""The README's Deployments section, run as written on a fresh working root, and the UI naming
each model (issue 24).

One real stack (``make stack-up`` on a free loopback port, its own RETRAIN_HOME and
PREFECT_HOME under tmp_path, a configuration with two models: the repository's ``demo`` and a
``churn`` on the same demo data):

1. the README's commands up to ``make stack-down``, verbatim but for the port: the deployed
   forced run ends PROMOTED;
2. two models on the server: the runs list (``prefect flow-run ls`` and the API) tells them
   apart by name, every run carries its ``model:`` tag, a name chosen with
   ``--flow-run-name`` is kept with the outcome appended;
3. the run form, in headless Chromium, shows ``[models.<name>]`` as text (skipped without
   Chromium);
4. a run in flight, then the README's ``make stack-down``: the run is cancelled, and no
   process that stack-up or its workers started is alive afterwards (checked by PID).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import find_chromium, open_page
from fakes import REPO_ROOT
from stack_tools import free_port, kill_group, run_snippet

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.executable).parent
TIMEOUT = 600.0
CHURN = """
[models.churn]
target_column = "target"
id_column = "id"
num_epochs = 10
"""


def readme_commands() -> list[str]:
    """The commands of the README's Deployments block, comments removed."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Deployments (a real Prefect server)", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def bash(script: str, env: dict[str, str], timeout: float = TIMEOUT) -> str:
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"{script}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def descendants(pids: set[int]) -> set[int]:
    """Every live process below ``pids`` (from /proc)."""
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found: set[int] = set()
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent has stopped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


RUNS = """
import json
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as c:
    runs = c.read_flow_runs()
    flows = {f.id: f.name for f in c.read_flows()}
    print(json.dumps([{"id": str(r.id), "name": r.name, "tags": sorted(r.tags),
                       "flow": flows.get(r.flow_id), "state": r.state.type.value if r.state
                       else None, "top": r.parent_task_run_id is None,
                       "params": r.parameters, "pid": r.infrastructure_pid,
                       "deployment": str(r.deployment_id) if r.deployment_id else None}
                      for r in runs]))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("readme")
    port = free_port()
    config = tmp / "retraining.toml"
    config.write_text((REPO_ROOT / "retraining.toml").read_text() + CHURN)
    (tmp / "home").mkdir()
    env = {
        **os.environ,
        "RETRAIN_HOME": str(tmp / "home"),
        "RETRAIN_CONFIG": str(config),
        "RETRAIN_PREFECT_PORT": str(port),
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    env.pop("PREFECT_API_URL", None)
    state = tmp / "home" / "stack"
    info: dict[str, Any] = {"env": env, "port": port, "state": state, "tmp": tmp}
    try:
        yield info
    finally:
        subprocess.run(["bash", "deployments/stack-down.sh"], cwd=REPO_ROOT, env=env, timeout=180)
        for pid_file in state.glob("*.pid") if state.is_dir() else ():
            kill_group(pid_file)


def test_readme_deployments_then_models_then_stack_down(stack: dict[str, Any]) -> None:
    env, port = stack["env"], stack["port"]
    commands = readme_commands()
    assert commands[-1] == "make stack-down"
    assert any("retrain demo-data" in c for c in commands)  # data comes with the section
    script = "\n".join(c.replace("4200", str(port)) for c in commands[:-1])
    out = bash(script, env)
    assert f"http://127.0.0.1:{port}" in out
    assert ".venv/bin/prefect deployment run" in out  # the hint a user can paste
    api = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    home = Path(env["RETRAIN_HOME"])
    lines = (home / "models" / "demo" / "history.jsonl").read_text().splitlines()
    assert "promoted" in [json.loads(line)["event"] for line in lines]

    # two models: names and tags, a chosen name kept
    prefect = str(BIN / "prefect")
    bash(f"{BIN}/retrain --model churn demo-data --rows 3000", api)
    run = f"{prefect} deployment run retraining/weekly -p model_name=churn -p force_retrain=true"
    bash(f"{run} --watch", api)
    bash(f"{run} --flow-run-name nightly-churn --watch", api)
    bash(f"{prefect} deployment run drift-monitor/daily -p model_name=churn --watch", api)
    runs = run_snippet(api, RUNS)
    top = [r for r in runs if r["top"] and r["state"] != "SCHEDULED"]
    assert {r["flow"] for r in top} == {"retraining", "drift-monitor"}
    for r in top:
        model = (r["params"] or {}).get("model_name") or "demo"
        assert f"model:{model}" in r["tags"], r
        if r["deployment"]:  # the deployment's tags kept beside the model's
            assert "retraining" in r["tags"], r
    names = sorted(r["name"] for r in top)
    assert any(re.fullmatch(r"demo · retrain-force-\S+-PROMOTED-v0001", n) for n in names), names
    assert any(re.fullmatch(r"churn · retrain-force-\S+-PROMOTED-v0001", n) for n in names), names
    assert any(re.fullmatch(r"nightly-churn · \w+-v0002", n) for n in names), names
    assert any(re.fullmatch(r"churn · drift-\d{4}-\d\d-\d\d-\S+", n) for n in names), names
    listed = bash(f"{prefect} flow-run ls --limit 50", {**api, "COLUMNS": "250"})
    assert "demo · retrain-force" in listed and "churn · retrain-force" in listed, listed

    # the run form shows angle-bracketed words as text
    if find_chromium() is not None:
        deployment = next(r["deployment"] for r in top if r["flow"] == "retraining")
        url = f"http://127.0.0.1:{port}/deployments/deployment/{deployment}/run"
        with open_page(url) as tab:
            text = ""
            deadline = time.monotonic() + 60
            while "[models." not in text and time.monotonic() < deadline:
                time.sleep(1)
                text = tab.evaluate("document.body.innerText") or ""
            assert "[models.<name>]" in text, text[:2000]
            assert "data/<model>/incoming" in text, text[:2000]

    # a run in flight, then the README's last command
    state = stack["state"]
    started = {int((state / f"{n}.pid").read_text()) for n in ("server", "worker")}
    long = "-p num_epochs=5000 -p patience=5000 -p batch_size=32"  # minutes of training
    bash(f"{prefect} deployment run retraining/weekly -p force_retrain=true {long}", api)
    deadline = time.monotonic() + 300
    flight: dict[str, Any] = {}
    while time.monotonic() < deadline:
        flight = next(
            (r for r in run_snippet(api, RUNS) if r["state"] == "RUNNING" and r["top"]), {}
        )
        if flight.get("pid"):
            break
        time.sleep(2)
    assert flight.get("pid"), "the long run never started"
    time.sleep(5)  # into training
    now = next(r for r in run_snippet(api, RUNS) if r["id"] == flight["id"])
    assert now["state"] == "RUNNING", now
    pids = started | descendants(started)
    assert int(str(flight["pid"]).rsplit(":", 1)[-1]) in pids
    down = bash(commands[-1], env)
    assert "cancelling" in down and "Cancelled" in down, down
    left = [pid for pid in pids if alive(pid)]
    assert left == [], (left, down)
    assert not (state / "server.pid").exists()


def test_stack_up_refuses_a_bad_or_taken_port(stack: dict[str, Any]) -> None:
    env = {**stack["env"], "RETRAIN_HOME": str(stack["tmp"] / "other")}
    for port in ("http", "80"):
        out = subprocess.run(
            ["bash", "deployments/stack-up.sh", "--port", port],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and f"'{port}' is not accepted" in out.stderr, out.stderr
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            ["bash", "deployments/stack-up.sh"],
            cwd=REPO_ROOT,
            env={**env, "RETRAIN_PREFECT_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2 and f"port {port}" in out.stderr and "in use" in out.stderr
    assert not (stack["tmp"] / "other" / "stack" / "server.pid").exists()
