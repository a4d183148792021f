"""`repro stop`: end the jobs a killed workflow left running, and only those.

A snakemake killed hard (kill -9, a lost session) leaves its jobs running. They are `repro` processes started
in the project folder whose arguments name the profile's run folder (every rule passes `runs/<profile>/...`), so
those are the ones stopped: other profiles' jobs, other projects and anything else named "repro" are left alone.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from repro.cli.common import add


def register(commands) -> None:
    p = add(commands, "stop", "stop the repro jobs of one profile's run folder that a killed workflow left running",
            "repro stop --runs runs/smoke\nrepro stop --runs runs/paper --dry-run")
    p.add_argument("--runs", required=True, help="the profile's run folder (runs/<profile>)")
    p.add_argument("--project", default=".", help="the project folder the workflow ran in (default: here)")
    p.add_argument("--dry-run", action="store_true", help="list the jobs, stop nothing")
    p.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    p.set_defaults(func=stop)


def workflow_jobs(runs: str, project: str) -> list[tuple[int, str]]:
    """(pid, command line) of each repro process running in `project` with an argument inside `runs`."""
    project_dir = Path(project).resolve()
    folder = Path(runs).as_posix().rstrip("/") + "/"
    absolute = (project_dir / runs).as_posix().rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
        is_repro = any(Path(a).name == "repro" for a in argv[:2]) or "repro.cli" in argv[:4]
        names_runs = any(a.startswith((folder, absolute)) for a in argv)
        if is_repro and names_runs and cwd == project_dir:
            found.append((int(entry.name), " ".join(a for a in argv if a)))
    return found


def stop(args) -> int:
    jobs = workflow_jobs(args.runs, args.project)
    for pid, command in jobs:
        print(f"{pid}  {command[:160]}")
    if args.dry_run or not jobs:
        print(f"{len(jobs)} jobs of {args.runs}" + (" (nothing stopped)" if args.dry_run else ""))
        return 0
    for pid, _ in jobs:
        _signal(pid, signal.SIGTERM)
    deadline = time.time() + args.grace
    while time.time() < deadline and any(_alive(pid) for pid, _ in jobs):
        time.sleep(0.1)
    killed = [pid for pid, _ in jobs if _alive(pid)]
    for pid in killed:
        _signal(pid, signal.SIGKILL)
    print(f"stopped {len(jobs)} jobs of {args.runs} ({len(killed)} needed SIGKILL)")
    return 0


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing
