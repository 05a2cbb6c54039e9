"""Crash safety and concurrency of the registry, with real processes and SIGKILL.

Each trial starts a child (``python -c``) that imports the registry, says ``ready``,
waits for ``go`` and runs one promotion or rollback; the parent kills it with SIGKILL,
either right after file-system step k (a checkpoint hook in the child kills itself) or
after a random delay spread over the measured duration of the operation. Afterwards
``production`` must load with a valid checksum, be the old or the new version, and every
history line must parse. The same harness run on the lab's naive promotion
(``shutil.copy2`` over the production file) must catch its corruption.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import REPO_ROOT, make_model

from model.errors import RegistryError
from model.registry import PRODUCTION_EVENTS, ModelRegistry, check_model_folder

#: Every checkpoint of ProductionPointer.switch, in order.
SWITCH_STEPS = (
    "pending_tmp",
    "pending",
    "link_tmp",
    "link_replaced",
    "link",
    "pointer_tmp",
    "pointer",
    "history",
    "done",
)
NAIVE_STEPS = ("backup", "model_pt_partial", "model_pt", "model_json")

CHILD = r"""
import os, signal, sys
root, impl, op, target, die_after = sys.argv[1:6]

def hook(name):
    if name == die_after:
        os.kill(os.getpid(), signal.SIGKILL)

if impl == "registry":
    import model.registry as r
    import model.registry.files as files
    files._checkpoint = hook
    reg = r.ModelRegistry(root)
    def run():
        if op == "promote":
            reg.promote(target, "fault test", force=True)
        else:
            reg.rollback(reason="fault test")
else:
    import shutil
    prod = os.path.join(root, "production")
    def run():  # the lab's promotion: back up, then copy the new files over production
        shutil.copy2(os.path.join(prod, "model.pt"), os.path.join(root, "backup.pt"))
        hook("backup")
        src = os.path.join(target, "model.pt")
        with open(src, "rb") as fi, open(os.path.join(prod, "model.pt"), "wb") as fo:
            half = os.path.getsize(src) // 2
            fo.write(fi.read(half)); fo.flush()
            hook("model_pt_partial")
            shutil.copyfileobj(fi, fo)
        hook("model_pt")
        shutil.copy2(os.path.join(target, "model.json"), os.path.join(prod, "model.json"))
        hook("model_json")

print("ready", flush=True)
sys.stdin.readline()
run()
print("done", flush=True)
sys.stdin.readline()
"""


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def finish(proc: subprocess.Popen[str], delay: float | None) -> None:
    """Let the child run its operation, then SIGKILL it (after ``delay`` s, or when it
    has killed itself at its step / printed ``done``)."""
    go(proc)
    if delay is not None:
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    else:
        assert proc.stdout is not None
        proc.stdout.readline()  # "done", or EOF when it killed itself
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def timed_run(proc: subprocess.Popen[str]) -> float:
    """Go, wait for ``done``; return the seconds between them (the operation as observed)."""
    assert proc.stdout is not None
    t0 = time.perf_counter()
    go(proc)
    assert proc.stdout.readline().strip() == "done"
    elapsed = time.perf_counter() - t0
    proc.kill()
    proc.wait(timeout=30)
    return elapsed


# --------------------------------------------------------------------------- registry


class Trial:
    """One registry with two versions, A and B; production alternates between them."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "models"
        self.reg = ModelRegistry(self.root)
        self.a = self.reg.register(make_model(tmp / "a", 1))
        self.b = self.reg.register(make_model(tmp / "b", 2))
        self.reg.promote(self.a, "first")
        self.sha = {v: self.reg.metadata(v)["sha256"] for v in (self.a, self.b)}
        self.interrupted = 0

    def prepare(self, op: str) -> tuple[str, str]:
        """Return (old, new) production for the next ``op``; set up a rollback target."""
        prod = self.reg.production()
        assert prod is not None
        old = prod.version
        other = self.b if old == self.a else self.a
        if op == "promote":
            return old, other
        if self.reg.previous_production() is None:
            self.reg.promote(other, "make a rollback target", force=True)
            old, other = other, old
        prev = self.reg.previous_production()
        assert prev is not None
        return old, prev

    def check(self, old: str, new: str, events_before: int) -> tuple[list[str], str | None]:
        """Invariants right after the kill (no recovery yet), then after recovery.
        Returns the problems found and the version production ended on."""
        problems = []
        link = self.root / "production"
        version: str | None = None
        try:  # what a user loads: production/model.pt checked against production/model.json
            _, sha = check_model_folder(link)
            version = Path(os.path.realpath(link)).name
            if version not in (old, new) or sha != self.sha[version]:
                problems.append(f"production is {version} ({sha[:8]}), not {old} or {new}")
        except (RegistryError, OSError) as exc:
            problems.append(f"production does not load: {exc}")
        problems += history_problems(self.root / "history.jsonl")
        self.reg.recover()
        prod = self.reg.production()
        pointer = json.loads((self.root / "production.json").read_text())
        if prod is None or prod.version != version or pointer["version"] != version:
            problems.append(f"after recovery: pointer {pointer['version']}, link {version}")
        # Exactly one production event iff the switch committed (the link moved).
        expected = events_before + (1 if version == new else 0)
        if count_production_events(self.root) != expected:
            problems.append(
                f"{count_production_events(self.root)} production events, expected {expected}"
            )
        last = self.reg.last_event(PRODUCTION_EVENTS)
        if last is None or last["version"] != version:
            problems.append("the last production event does not name production")
        if (self.root / ".pending.json").exists():
            problems.append("intent file left after recovery")
        return problems, version


def history_problems(path: Path) -> list[str]:
    problems = []
    data = path.read_bytes()
    for i, line in enumerate(data.split(b"\n")[:-1], start=1):
        try:
            json.loads(line)
        except ValueError:
            problems.append(f"history line {i} does not parse: {line[:60]!r}")
    if not data.endswith(b"\n"):
        problems.append("history ends with a partial line")
    return problems


def count_production_events(root: Path) -> int:
    lines = (root / "history.jsonl").read_text().splitlines()
    return sum(json.loads(ln)["event"] in PRODUCTION_EVENTS for ln in lines)


def run_registry_trial(
    trial: Trial, op: str, die_after: str, delay: float | None
) -> tuple[list[str], bool]:
    """One killed operation; returns (problems, whether production moved to the new one)."""
    old, new = trial.prepare(op)
    events_before = count_production_events(trial.root)
    finish(spawn(str(trial.root), "registry", op, new, die_after), delay)
    trial.interrupted += any(  # killed mid-switch: an intent or a temp file is left
        p.name == ".pending.json" or ".tmp-" in p.name for p in trial.root.iterdir()
    )
    problems, version = trial.check(old, new, events_before)
    when = f"after step {die_after}" if delay is None else f"after {delay * 1000:.2f} ms"
    return [f"{op} {old}->{new} killed {when}: {p}" for p in problems], version == new


def test_kill_after_each_step_of_promote_and_rollback(tmp_path: Path) -> None:
    trial = Trial(tmp_path)
    problems: list[str] = []
    moved = []
    for op in ("promote", "rollback"):
        for step in SWITCH_STEPS:
            found, switched = run_registry_trial(trial, op, step, None)
            problems += found
            moved.append(switched)
    assert problems == []
    # Killed before the link swap: the old version; from the swap on: the new one.
    n_before = SWITCH_STEPS.index("link_replaced")
    per_op = [False] * n_before + [True] * (len(SWITCH_STEPS) - n_before)
    assert moved == per_op * 2
    assert trial.interrupted == 2 * (len(SWITCH_STEPS) - 1)  # every step but "done"


@pytest.mark.slow
def test_kill_at_random_moments_100_trials(tmp_path: Path) -> None:
    trial = Trial(tmp_path)
    durations = {}
    for op in ("promote", "rollback"):
        runs = []
        for _ in range(5):
            _, new = trial.prepare(op)
            runs.append(timed_run(spawn(str(trial.root), "registry", op, new, "-")))
        durations[op] = statistics.median(runs)
    rng = random.Random(7)
    problems: list[str] = []
    moved = 0
    for i in range(100):
        op = "promote" if i % 2 == 0 else "rollback"
        found, switched = run_registry_trial(trial, op, "-", rng.uniform(0, 1.2 * durations[op]))
        problems += found
        moved += switched
    assert problems == []
    ms = {op: round(d * 1000, 1) for op, d in durations.items()}
    print(f"op ms {ms}: switched {moved}/100, killed mid-switch {trial.interrupted}/100")


# --------------------------------------------------------------------------- negative control


def naive_setup(tmp: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    root = tmp / "naive"
    prod = root / "production"
    old = make_model(tmp / "old", 1, size=1 << 23)
    new = make_model(tmp / "new", 2, size=1 << 23)
    prod.mkdir(parents=True)
    for name in ("model.pt", "model.json"):
        (prod / name).write_bytes((old / name).read_bytes())
    sha = {json.loads((p / "model.json").read_text())["sha256"]: p.name for p in (old, new)}
    return root, old, new, sha


def naive_check(root: Path, sha: dict[str, str]) -> list[str]:
    try:
        _, digest = check_model_folder(root / "production")
    except RegistryError as exc:
        return [f"production does not load: {exc}"]
    return [] if digest in sha else ["production is neither the old nor the new model"]


def naive_trials(tmp: Path, kills: list[tuple[str, float | None]]) -> list[str]:
    problems = []
    for i, (step, delay) in enumerate(kills):
        root, _, new, sha = naive_setup(tmp / f"t{i}")
        proc = spawn(str(root), "naive", "promote", str(new), step)
        finish(proc, delay)
        problems += naive_check(root, sha)
    return problems


def test_negative_control_naive_copy_is_caught_at_its_steps(tmp_path: Path) -> None:
    problems = naive_trials(tmp_path, [(step, None) for step in NAIVE_STEPS])
    # Killed mid-copy or between model.pt and model.json: production is corrupt.
    assert len(problems) >= 2, problems


@pytest.mark.slow
def test_negative_control_naive_copy_is_caught_at_random_moments(tmp_path: Path) -> None:
    root, _, new, _ = naive_setup(tmp_path / "calibrate")
    duration = statistics.median(
        timed_run(spawn(str(root), "naive", "promote", str(new), "-")) for _ in range(5)
    )
    rng = random.Random(11)
    kills: list[tuple[str, float | None]] = [
        ("-", rng.uniform(0, 1.2 * duration)) for _ in range(40)
    ]
    problems = naive_trials(tmp_path, kills)
    assert problems, "the fault-injection harness failed to catch the naive promotion"
    print(f"naive copy {duration * 1000:.1f} ms: {len(problems)}/40 corrupt")


# --------------------------------------------------------------------------- concurrency

WORKER = r"""
import json, random, sys
from model.errors import RegistryError
from model.registry import ModelRegistry
root, seed, *folders = sys.argv[1:]
reg = ModelRegistry(root)
rng = random.Random(int(seed))
print("ready", flush=True)
sys.stdin.readline()
ops, registered = 0, []
for folder in folders:
    registered.append(reg.register(folder, reason="worker " + seed)); ops += 1
    for _ in range(4):
        try:
            if rng.random() < 0.6:
                prod = reg.production()
                choices = [v for v in reg.version_names() if not prod or v != prod.version]
                reg.promote(rng.choice(choices), "worker " + seed, force=True)
            else:
                reg.rollback(reason="worker " + seed)
            ops += 1
        except RegistryError:
            pass
print(json.dumps({"ops": ops, "registered": registered}), flush=True)
"""


def test_concurrent_processes_never_lose_a_version_or_a_line(tmp_path: Path) -> None:
    root = tmp_path / "models"
    reg = ModelRegistry(root)
    reg.promote(reg.register(make_model(tmp_path / "seed", 0)), "first")
    n_workers, per_worker = 4, 3
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = []
    for w in range(n_workers):
        folders = [
            str(make_model(tmp_path / f"w{w}-{k}", 10 * w + k + 1)) for k in range(per_worker)
        ]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(root), str(w), *folders],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        go(p)  # type: ignore[arg-type]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))

    registered = [v for r in results for v in r["registered"]]
    assert len(set(registered)) == n_workers * per_worker  # no number handed out twice
    assert reg.version_names() == [f"v{i:04d}" for i in range(1, n_workers * per_worker + 2)]
    for v in reg.version_names():
        check_model_folder(reg.version_path(v))
    lines = (root / "history.jsonl").read_text().splitlines()
    assert len(lines) == 2 + sum(r["ops"] for r in results)  # seed: registered + promoted
    events = [json.loads(ln) for ln in lines]
    assert sum(e["event"] in PRODUCTION_EVENTS for e in events) == 1 + sum(
        r["ops"] - per_worker for r in results
    )
    prod = reg.production()
    assert prod is not None
    assert json.loads((root / "production.json").read_text())["version"] == prod.version
    assert [e for e in events if e["event"] in PRODUCTION_EVENTS][-1]["version"] == prod.version
    assert check_model_folder(root / "production")[1] == prod.sha256


def test_processes_wait_for_the_lock(tmp_path: Path) -> None:
    holder = ModelRegistry(tmp_path / "models")
    other = ModelRegistry(tmp_path / "models", lock_timeout=0.2)
    with holder.locked(), pytest.raises(RegistryError, match="locked by another process"):
        other.record("skipped", reasons=["x"])
    other.record("skipped", reasons=["x"])
    assert len(other.history()) == 1
