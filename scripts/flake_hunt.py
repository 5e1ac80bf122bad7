"""`make flake-hunt`: run the test suite again and again under CPU load and count what fails.

A test that passes on an idle machine and fails on a busy one waits on the clock instead of
an event. This script makes the machine busy itself (``stress-ng --cpu N`` when installed,
else N busy-loop processes; N = the CPU count), runs pytest RUNS times (optionally in a
random order, seeded and printed so that an order can be replayed), and prints each test
that failed with how often and its first error line, then the totals. The load processes
are always ended, also on Ctrl-C. Each run's log and JUnit XML stay in ``.flake-hunt/``.

Each run prints a fingerprint of the code it tested (``oe_async/``, ``tests/``,
``pyproject.toml``, as they were when it started). A file edited while the hunt runs would
make its runs test different code, and a failure of one run then looks like a flake: the
summary says so, and which runs tested which code.

Exit status: 0 when every run passed, 1 when a test failed at least once (or the code
changed while the hunt ran), 2 on bad usage.

Usage: python scripts/flake_hunt.py [--runs 5] [--jobs 1] [--load auto|stress-ng|busy|none]
       [--random-order [--bucket module]] [--timed] [--python PY] [-- PYTEST ARGS...]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What marks a test file as timing-sensitive for ``--timed`` (sleeps, timeouts, deadlines,
#: elapsed-time checks): the files worth many more runs than the whole suite gets.
TIMED = re.compile(
    r"asyncio\.sleep\(|timeout=|deadline|time\.monotonic|loop\.time\(|wait_for\(|"
    r"perf_counter|pool_timeout|latency"
)
BUSY_LOOP = "while True:\n    pass\n"
#: What a run tests: a change to any of these while the hunt runs mixes two versions.
SOURCES = ("oe_async", "tests", "pyproject.toml")


@dataclass
class Failure:
    """One test's failures over the hunt."""

    count: int = 0
    first_line: str = ""
    runs: list[int] = field(default_factory=list)


@dataclass
class Run:
    """What one pytest run reported."""

    number: int
    seed: int | None
    exit_code: int
    seconds: float
    tests: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # node id -> first error line
    log: Path = Path()
    code: str = ""  # fingerprint of the sources when the run started


# ---------------------------------------------------------------------------- load


@contextmanager
def cpu_load(kind: str, workers: int) -> Iterator[str]:
    """Keep ``workers`` CPUs busy until the block ends; yield a description of the load."""
    if kind == "auto":
        kind = "stress-ng" if shutil.which("stress-ng") else "busy"
    if kind == "none":
        yield "none"
        return
    if kind == "stress-ng":
        if not shutil.which("stress-ng"):
            sys.exit("flake-hunt: --load stress-ng, but stress-ng is not installed")
        commands = [["stress-ng", "--cpu", str(workers), "--quiet"]]
        what = f"stress-ng --cpu {workers}"
    else:
        commands = [[sys.executable, "-c", BUSY_LOOP] for _ in range(workers)]
        what = f"{workers} busy-loop process(es)"
    # Each in its own process group, so that ending it also ends stress-ng's workers.
    procs = [
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for command in commands
    ]
    try:
        yield what
    finally:
        for proc in procs:
            _end_group(proc)


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _sigterm_is_an_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C: the load processes are ended


# ---------------------------------------------------------------------------- runs


def timed_files() -> list[str]:
    """The test files that sleep, wait with a timeout or check elapsed time."""
    return sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").glob("test_*.py")
        if TIMED.search(path.read_text(encoding="utf-8"))
    )


def code_fingerprint() -> str:
    """A short hash of the tested sources' paths and contents (see SOURCES)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def node_id(case: ET.Element) -> str:
    """``tests/test_x.py::test_y[param]`` from a JUnit ``testcase``."""
    classname = case.get("classname", "")
    name = case.get("name", "")
    parts = classname.split(".")
    # "tests.test_x" or "tests.test_x.TestClass": the module is the last part named test_*.
    module_end = max((i for i, part in enumerate(parts) if part.startswith("test")), default=-1)
    if module_end < 0:
        return f"{classname}::{name}"
    module = "/".join(parts[: module_end + 1]) + ".py"
    return "::".join([module, *parts[module_end + 1 :], name])


def first_line(element: ET.Element) -> str:
    message = (element.get("message") or element.text or "").strip()
    line = message.splitlines()[0] if message else element.tag
    return line[:160]


def read_report(run: Run, xml: Path) -> None:
    """Fill ``run`` from pytest's JUnit XML (no XML: the whole run counts as failed)."""
    if not xml.exists():
        run.failed["<pytest run>"] = f"pytest exited {run.exit_code} without a report"
        return
    for case in ET.parse(xml).iter("testcase"):
        node = node_id(case)
        run.tests += 1
        problems = [child for child in case if child.tag in ("failure", "error")]
        if problems:
            # A failure and a teardown error of the same test count once; the first says why.
            run.failed.setdefault(node, first_line(problems[0]))
        elif case.find("skipped") is not None:
            run.skipped += 1
    if run.exit_code not in (0, 1) and not run.failed:
        run.failed["<pytest run>"] = f"pytest exited {run.exit_code}"


def start_run(
    number: int, args: argparse.Namespace, pytest_args: Sequence[str], seed: int | None
) -> tuple[subprocess.Popen[bytes], Run, Path, float]:
    log = args.out / f"run-{number}.log"
    xml = args.out / f"run-{number}.xml"
    xml.unlink(missing_ok=True)
    command = [args.python, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    if seed is not None:
        command += [f"--random-order-bucket={args.bucket}"]
        command += [f"--random-order-seed={seed}"]
    command += list(pytest_args)
    code = code_fingerprint()  # taken before the start: pytest imports what is there then
    with log.open("wb") as out:
        # A process group of its own: an interrupted run is ended with whatever its tests
        # started (simulator processes, `make demo`).
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = Run(number=number, seed=seed, exit_code=-1, seconds=0.0, log=log, code=code)
    return proc, run, xml, time.monotonic()


def hunt(args: argparse.Namespace, pytest_args: list[str]) -> list[Run]:
    seeds = random.SystemRandom()
    pending = list(range(1, args.runs + 1))
    running: list[tuple[subprocess.Popen[bytes], Run, Path, float]] = []
    done: list[Run] = []
    try:
        while pending or running:
            while pending and len(running) < args.jobs:
                seed = seeds.randrange(1, 10**6) if args.random_order else None
                running.append(start_run(pending.pop(0), args, pytest_args, seed))
            time.sleep(0.5)  # a plain script, no event loop: sleeping here blocks nothing
            for entry in list(running):
                proc, run, xml, began = entry
                if proc.poll() is None:
                    continue
                running.remove(entry)
                run.exit_code = proc.returncode
                run.seconds = time.monotonic() - began
                read_report(run, xml)
                done.append(run)
                report_run(run, args.runs)
    except KeyboardInterrupt:
        print("flake-hunt: interrupted; the runs in progress and the load are ended", flush=True)
    finally:
        for proc, _, _, _ in running:
            _end_group(proc)
    return done


# ---------------------------------------------------------------------------- output


def report_run(run: Run, total: int) -> None:
    order = f", random order seed {run.seed}" if run.seed is not None else ""
    verdict = "ok" if not run.failed else f"{len(run.failed)} FAILED"
    print(
        f"run {run.number}/{total}: {verdict}: {run.tests} tests, {run.skipped} skipped, "
        f"{run.seconds:.0f} s{order}, code {run.code} ({shown(run.log)})",
        flush=True,
    )
    for node, line in run.failed.items():
        print(f"    FAILED {node}: {line}", flush=True)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def summary(runs: list[Run], planned: int, bucket: str, pytest_args: Sequence[str]) -> int:
    failures: dict[str, Failure] = collections.defaultdict(Failure)
    for run in runs:
        for node, line in run.failed.items():
            failure = failures[node]
            failure.count += 1
            failure.runs.append(run.number)
            failure.first_line = failure.first_line or line
    executed = sum(run.tests for run in runs)
    failed_runs = sum(1 for run in runs if run.failed)
    print()
    print("=" * 78)
    if failures:
        print(f"{'failed':>8}  test (first error; runs it failed in)")
        for node, failure in sorted(failures.items(), key=lambda item: (-item[1].count, item[0])):
            print(f"{failure.count:>3} of {len(runs):<2} {node}")
            print(f"{'':10}{failure.first_line}")
            print(f"{'':10}runs {', '.join(map(str, failure.runs))}")
        seeded = [run for run in runs if run.failed and run.seed is not None]
        if seeded:
            run = seeded[0]
            print(
                f"replay run {run.number}'s order: python -m pytest "
                f"--random-order-bucket={bucket} --random-order-seed={run.seed} "
                + " ".join(pytest_args)
            )
    versions: dict[str, list[int]] = collections.defaultdict(list)
    for run in sorted(runs, key=lambda run: run.number):
        versions[run.code].append(run.number)
    if len(versions) > 1:
        print("WARNING: the code changed while the hunt ran; a failure in some runs only may be")
        print("the change, not a flake. Runs by the code they tested:")
        for code, numbers in versions.items():
            print(f"{'':10}code {code}: runs {', '.join(map(str, numbers))}")
    unfinished = f" ({planned - len(runs)} not run: interrupted)" if len(runs) < planned else ""
    print(
        f"flake-hunt: {len(runs)} runs{unfinished}, {executed} tests executed, "
        f"{failed_runs} runs with failures, {len(failures)} distinct tests failed, "
        f"{sum(f.count for f in failures.values())} failures"
    )
    return 1 if failures or len(runs) < planned or len(versions) > 1 else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="pytest runs (default 5)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (default 1)")
    parser.add_argument(
        "--load",
        choices=["auto", "stress-ng", "busy", "none"],
        default="auto",
        help="CPU load to create: stress-ng if installed, else busy loops (default auto)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="CPUs to keep busy"
    )
    parser.add_argument(
        "--random-order",
        action="store_true",
        help="shuffle the tests in each run (pytest-random-order; the seed is printed)",
    )
    parser.add_argument(
        "--bucket",
        default="module",
        choices=["global", "package", "module", "class", "parent", "grandparent"],
        help="what --random-order shuffles within (default module: modules and their tests)",
    )
    parser.add_argument(
        "--timed", action="store_true", help="only the test files that sleep or use deadlines"
    )
    parser.add_argument("--python", default=sys.executable, help="the interpreter to test with")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / ".flake-hunt",
        help="where each run's log and JUnit XML go (default .flake-hunt/; emptied first)",
    )
    args, pytest_args = parser.parse_known_args(argv)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    if args.runs < 1 or args.jobs < 1 or args.workers < 0:
        parser.error("--runs and --jobs must be at least 1, --workers at least 0")
    if args.timed:
        pytest_args = [*timed_files(), *pytest_args]
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in [*args.out.glob("run-*.log"), *args.out.glob("run-*.xml")]:
        stale.unlink()
    # Ctrl-C even when started in the background (a shell then has SIGINT ignored), and kill.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm_is_an_interrupt)
    with cpu_load(args.load if args.workers else "none", args.workers) as load:
        what = " ".join(pytest_args) if pytest_args else "the whole suite"
        if args.timed:
            what = f"{len(timed_files())} timing-sensitive files"
        order = f", random order (bucket {args.bucket})" if args.random_order else ""
        print(
            f"flake-hunt: {args.runs} runs of {what} with {args.python}, {args.jobs} at a time, "
            f"under load: {load}{order}",
            flush=True,
        )
        runs = hunt(args, pytest_args)
    return summary(runs, args.runs, args.bucket, pytest_args)


if __name__ == "__main__":
    sys.exit(main())
