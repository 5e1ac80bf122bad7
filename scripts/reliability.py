"""`make reliability`: run the hardening checks and print one table (check, figure, target, pass).

Steps (figures come from the tests themselves, through OE_RELIABILITY_REPORT):

1. hostile servers (timeout T = 2 s) and leak cycles (1,000 per streaming API);
2. the whole suite with asyncio debug mode on (OE_LOOP_DEBUG=1); the blocking-call guard and
   the secret canary are on in every run of the suite;
3. the version matrix (scripts/matrix.py; MATRIX=0 skips it, reusing the last result);
4. fuzzing: FUZZ=1 runs it (hours: >= 100,000 examples per property); otherwise the last
   `make fuzz` result is shown with its date, or "not run".

The table is printed and written to RELIABILITY.md. Each step's figures are also kept in
.reliability/ (hostile.json, suite.json, matrix.json, fuzz.json), so `--table` rebuilds the
table without re-running anything, e.g. after a long fuzz run. `python scripts/reliability.py
--fuzz-only` is `make fuzz`; add `--resume` to skip the properties already recorded as passed.

Rows whose check starts with "Security review" are written by hand (each names its regression
tests and the figures they showed); rebuilding the table keeps them, verbatim and in order,
after the generated rows, and one marked NO counts as a missed target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".reliability"
PYTHON = sys.executable
PYTEST = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
MiB = 1024 * 1024
HOSTILE_TIMEOUT = 2.0
LEAK_CYCLES = 1000
FUZZ_GROUPS = {
    "mjpeg": ["tests/test_mjpeg.py", "-k", "split or random or noise or fuzz"],
    "decoders": ["tests/test_fuzz_decoders.py"],
}


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def pytest_run(args: list[str], env: dict[str, str], log: Path) -> tuple[bool, str]:
    """Run pytest; (green, its summary line). The full output goes to ``log``."""
    with log.open("w") as out:
        result = subprocess.run(
            [*PYTEST, *args],
            check=False,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=out,
        )
    lines = log.read_text().splitlines()
    summary = next(
        (ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed)", ln)), "?"
    )
    return result.returncode == 0, summary


# ---------------------------------------------------------------------------- fuzz


def parse_fuzz_log(text: str) -> dict[str, dict[str, Any]]:
    """Per-test example counts from ``--hypothesis-show-statistics`` output."""
    tests: dict[str, dict[str, Any]] = {}
    current = None
    for line in text.splitlines():
        header = re.match(r"^(tests/\S+::\S+):\s*$", line.strip())
        if header:
            current = header.group(1)
            tests[current] = {"passing": 0, "failing": 0}
            continue
        counts = re.search(r"(\d+) passing(?: examples?)?, (\d+) failing", line)
        if counts and current:
            tests[current]["passing"] += int(counts.group(1))
            tests[current]["failing"] += int(counts.group(2))
    return tests


def record_fuzz(test: str, text: str, code: int, seconds: float) -> None:
    """Merge one property's run into .reliability/fuzz.json (each keeps its own date)."""
    path = OUT / "fuzz.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    counts = parse_fuzz_log(text).get(test, {"passing": 0, "failing": 0})
    data.setdefault("tests", {})[test] = {
        **counts,
        "exit": code,
        "when": now(),
        "seconds": round(seconds),
    }
    path.write_text(json.dumps(data, indent=2))


def fuzz_tests(groups: list[str]) -> list[str]:
    """The node ids of the fuzz properties in ``groups``."""
    ids: list[str] = []
    for name in groups:
        listed = subprocess.run(
            [*PYTEST, *FUZZ_GROUPS[name], "--collect-only"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        ids += [line for line in listed.splitlines() if "::" in line]
    # The payload-model properties are the slowest (up to ~20 ms an example for the big
    # payloads): run them last, biggest last, so an interrupted run has completed the most.
    big = ("PrinterStatus", "GadgetStatus", "ConnectionInfo", "WebcamList")
    return sorted(
        ids,
        key=lambda test: ("structure_models" in test, any(name in test for name in big)),
    )


def fuzz_done() -> set[str]:
    """Properties already recorded with >= 100,000 passing examples and none failing."""
    path = OUT / "fuzz.json"
    tests = json.loads(path.read_text()).get("tests", {}) if path.exists() else {}
    return {
        test
        for test, r in tests.items()
        if r["passing"] >= 100_000 and r["failing"] == 0 and r["exit"] == 0
    }


def run_fuzz(
    groups: list[str], jobs: int = 2, *, resume: bool = False, select: list[str] | None = None
) -> bool:
    """Run each property on its own (``jobs`` at a time, one per core), recording each
    result as it finishes, so an interrupted run keeps what it completed. ``resume`` skips
    the properties already recorded as passed; ``select`` keeps only the properties whose
    node id contains one of its strings."""
    OUT.mkdir(exist_ok=True)
    done = fuzz_done() if resume else set()
    pending = [
        test
        for test in fuzz_tests(groups)
        if test not in done and (not select or any(part in test for part in select))
    ]
    running: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
    green = True
    while pending or running:
        while pending and len(running) < jobs:
            test = pending.pop(0)
            log = OUT / ("fuzz-" + re.sub(r"[^\w.-]+", "_", test) + ".log")
            command = [
                *PYTEST,
                test,
                "--hypothesis-profile=fuzz",
                "--hypothesis-show-statistics",
                "--timeout=0",
            ]
            with log.open("w") as out:
                proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            running[test] = (proc, time.monotonic())
            print(f"fuzz: started {test}", flush=True)
        time.sleep(1)
        for test, (proc, started) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[test]
            log = OUT / ("fuzz-" + re.sub(r"[^\w.-]+", "_", test) + ".log")
            record_fuzz(test, log.read_text(), code, time.monotonic() - started)
            green = green and code == 0
            print(f"fuzz: {test} {'passed' if code == 0 else 'FAILED'}", flush=True)
    return green


# ---------------------------------------------------------------------------- table

Row = tuple[str, str, str, bool | None]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def hostile_rows(report: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for label, r in report.get("hostile", {}).items():
        t = r["timeout"]
        if r["timed"]:
            on_time = 0.9 * t <= r["elapsed"] <= 1.1 * t
            when = f"at {r['elapsed']:.3f} s of T={t:g} s"
            target = "clear error at T ±10%, CPU < 1 s, bounded memory, 0 conns"
        else:
            on_time = r["elapsed"] <= 1.1 * t
            when = f"after {ms(r['elapsed'])} (T={t:g} s)"
            target = "clear error within T, CPU < 1 s, bounded memory, 0 conns"
        ok = (
            on_time
            and r["cpu"] < 1.0
            and r["peak_bytes"] < r["memory_bound"]
            and r["acquired"] == 0
            and r["error"] not in ("NoneType", "")
        )
        figure = (
            f"{r['error']} {when}; CPU {ms(r['cpu'])}; peak {r['peak_bytes'] / MiB:.1f} MiB "
            f"(bound {r['memory_bound'] / MiB:.0f}); {r['acquired']} conns"
        )
        rows.append((f"Hostile: {label}", figure, target, ok))
    return rows


def leak_rows(report: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, r in report.get("leaks", {}).items():
        ok = (
            r["acquired"] == 0
            and r["fds_gained"] <= 0
            and r["memory_growth"] < MiB
            and r["unclosed"] == 0
            and r["tasks_left"] <= 0
        )
        figure = (
            f"{r['cycles']:,} cycles: {r['acquired']} conns, {max(0, r['fds_gained'])} fds, "
            f"{r['memory_growth'] / 1024:+.0f} KiB, {r['unclosed']} unclosed, "
            f"{max(0, r['tasks_left'])} tasks"
        )
        rows.append((f"Leaks: {name} start/cancel", figure, "0, 0, < 1 MiB, 0 (and 0 tasks)", ok))
    return rows


def suite_rows(*, green: bool, summary: str, report: dict[str, Any]) -> list[Row]:
    canary = report.get("canary", {"tests": 0, "checked": {}, "leaks": 0})
    rows: list[Row] = [
        (
            "No blocking calls on the loop (open, stat, read/write, listdir, sleep)",
            f"{canary['tests']:,} tests under blockbuster: {summary}",
            "0 blocking calls (any fails its test)",
            green,
        ),
        (
            "Secrets never in logs (DEBUG), reprs, errors, diagnostics",
            f"{canary['leaks']} leaks; checked "
            + ", ".join(
                f"{n:,} {kind if kind.endswith('s') else kind + 's'}"
                for kind, n in sorted(canary["checked"].items())
            ),
            "0 leaks",
            canary["leaks"] == 0 and canary["tests"] > 0,
        ),
    ]
    debug = report.get("loop_debug")
    if debug:
        none: dict[str, Any] = {"own": 0.0, "own_cpu": 0.0, "handle": "-", "test": "-"}
        by_cpu = debug.get("slowest_own_cpu", [])
        calm = [s for s in by_cpu if "test_hostile" not in s["test"]]
        calm_top = calm[0] if calm else none
        wall = [s for s in debug["slowest_own"] if "test_hostile" not in s["test"]]
        wall_top = wall[0] if wall else none
        rows.append(
            (
                "Slowest loop callback, asyncio debug mode (CPU time, GC pauses excluded)",
                f"{ms(calm_top['own_cpu'])} CPU ({_where(calm_top)}); slowest by wall time "
                f"{ms(wall_top['own'])} ({_where(wall_top)}, CPU {ms(wall_top.get('cpu', 0.0))})",
                "< 50 ms",
                calm_top["own_cpu"] < 0.05,
            )
        )
        hostile = debug.get("slowest_own_cpu_hostile", [])
        if hostile:
            rows.append(
                (
                    "  same, in the hostile-server tests (one-byte chunk floods)",
                    f"{ms(hostile[0]['own_cpu'])} CPU ({_where(hostile[0])}): aiohttp parses "
                    "a whole socket read of one-byte chunks (up to ~43,000) in one callback",
                    "reported",
                    None,
                )
            )
        rows.append(
            (
                "  slowest garbage-collector pause (whole suite, any callback)",
                ms(debug["slowest_gc_pause"]),
                "reported",
                None,
            )
        )
    return rows


def _where(entry: dict[str, Any]) -> str:
    handle = str(entry.get("handle", "-"))
    coro = re.search(r"coro=<([\w.<>]+)\(", handle)
    # A plain handle: its callback's name, without the arguments.
    plain = handle.split(" created at", maxsplit=1)[0].strip("<>").split("(", maxsplit=1)[0]
    name = coro.group(1) if coro else plain.removeprefix("Handle ").removeprefix("cancelled ")
    test = str(entry.get("test", "")).split("::")[-1][:50]
    return f"{name} in {test}"


def matrix_rows() -> list[Row]:
    path = OUT / "matrix.json"
    if not path.exists():
        return [("Version matrix", "not run (make matrix)", "all green", None)]
    data = json.loads(path.read_text())
    rows: list[Row] = []
    for cell in data["cells"]:
        label = f"Matrix: Python {cell['python']} x aiohttp {cell.get('aiohttp', cell['which'])}"
        rows.append((label, f"{cell['summary']} ({data['when']})", "green", cell["ok"]))
    return rows


def fuzz_rows() -> list[Row]:
    path = OUT / "fuzz.json"
    tests = json.loads(path.read_text()).get("tests", {}) if path.exists() else {}
    if not tests:
        return [("Fuzzing", "not run (make fuzz, or FUZZ=1 make reliability)", "0 / 0", None)]
    rows: list[Row] = []
    for test, r in tests.items():
        ok = r["passing"] >= 100_000 and r["failing"] == 0 and r["exit"] == 0
        figure = (
            f"{r['passing']:,} examples, {r['failing']} failing "
            f"({r['when']}, {r['seconds'] / 60:.0f} min)"
        )
        if r["exit"] != 0 and r["failing"] == 0:
            figure += "; the run failed outside the property (see its log)"
        if r.get("note"):
            figure += f"; {r['note']}"
        rows.append(
            (
                f"Fuzz: {test.split('::')[-1]}",
                figure,
                ">= 100,000; 0 hangs (5 s deadline) or unexpected exceptions",
                ok,
            )
        )
    rows.extend(
        (
            f"Fuzz: {test.split('::')[-1]}",
            "not run at this scale yet (make fuzz FUZZ_ARGS=--resume)",
            ">= 100,000; 0 hangs (5 s deadline) or unexpected exceptions",
            None,
        )
        for test in fuzz_tests(list(FUZZ_GROUPS))
        if test not in tests
    )
    return rows


def render(rows: list[Row], kept: list[str] | None = None) -> str:
    """The markdown table: the generated ``rows``, then the ``kept`` lines as they are."""
    mark = {True: "yes", False: "NO", None: "-"}
    lines = ["| Check | Figure | Target | Pass |", "|---|---|---|---|"]
    lines += [f"| {c} | {f} | {t} | {mark[p]} |" for c, f, t, p in rows]
    lines += kept or []
    return "\n".join(lines)


#: Rows no step measures: written by hand (figures from the named regression tests), kept
#: verbatim and in order, after the generated rows, each time the table is rebuilt.
KEPT_PREFIX = "Security review"


def kept_rows(text: str) -> list[str]:
    """The hand-written rows of an existing RELIABILITY.md (check cell starts with
    :data:`KEPT_PREFIX`), each line exactly as it is."""
    return [
        line
        for line in text.splitlines()
        if line.startswith("|") and line[1:].strip().startswith(KEPT_PREFIX)
    ]


def kept_row_failed(line: str) -> bool:
    """Whether a kept row says it missed its target (its last cell is ``NO``)."""
    return line.rstrip().removesuffix("|").rsplit("|", 1)[-1].strip() == "NO"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fuzz-only", action="store_true", help="run the fuzz groups (make fuzz)")
    parser.add_argument("--groups", nargs="+", default=list(FUZZ_GROUPS), help="fuzz groups to run")
    parser.add_argument("--jobs", type=int, default=2, help="fuzz properties run at once")
    parser.add_argument(
        "--resume", action="store_true", help="skip fuzz properties already recorded as passed"
    )
    parser.add_argument(
        "--select", nargs="+", help="only the fuzz properties whose node id contains one of these"
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="only print the table (and write RELIABILITY.md) from the last recorded results",
    )
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.fuzz_only:
        green = run_fuzz(args.groups, jobs=args.jobs, resume=args.resume, select=args.select)
        print(render(fuzz_rows()))
        return 0 if green else 1

    if not args.table:
        run_checks()
    return write_table()


def run_checks() -> None:
    """Steps 1-4; each step's figures are kept in .reliability/ for ``--table``."""
    report_path = OUT / "report.json"
    report_path.unlink(missing_ok=True)
    env = {"OE_RELIABILITY_REPORT": str(report_path)}
    print("1/4 hostile servers and leak cycles...", flush=True)
    green1, summary1 = pytest_run(
        ["tests/test_hostile.py", "tests/test_leaks.py"],
        {
            **env,
            "OE_HOSTILE_TIMEOUT": str(HOSTILE_TIMEOUT),
            "OE_LEAK_CYCLES": str(LEAK_CYCLES),
        },
        OUT / "hostile-leaks.log",
    )
    print(f"    {summary1}")
    hostile = json.loads(report_path.read_text()) if report_path.exists() else {}
    report_path.unlink(missing_ok=True)
    save("hostile", {"green": green1, "summary": summary1, "report": hostile, "when": now()})
    print("2/4 the whole suite in asyncio debug mode...", flush=True)
    green2, summary2 = pytest_run([], {**env, "OE_LOOP_DEBUG": "1"}, OUT / "suite-debug.log")
    print(f"    {summary2}")
    suite = json.loads(report_path.read_text()) if report_path.exists() else {}
    report_path.unlink(missing_ok=True)
    save("suite", {"green": green2, "summary": summary2, "report": suite, "when": now()})
    if os.environ.get("MATRIX", "1") != "0":
        print("3/4 the version matrix...", flush=True)
        subprocess.run([PYTHON, str(ROOT / "scripts" / "matrix.py")], check=False, cwd=ROOT)
    if os.environ.get("FUZZ") == "1":
        print("4/4 fuzzing (hours)...", flush=True)
        run_fuzz(list(FUZZ_GROUPS))


def save(name: str, data: dict[str, Any]) -> None:
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=2))


def load(name: str) -> dict[str, Any]:
    path = OUT / f"{name}.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def write_table() -> int:
    """Print the table from the last recorded results and write RELIABILITY.md."""
    hostile_run, suite_run = load("hostile"), load("suite")
    if not hostile_run or not suite_run:
        print("no recorded results: run `make reliability` first", file=sys.stderr)
        return 1
    hostile = hostile_run["report"]
    suite = suite_run["report"]
    green1, summary1 = hostile_run["green"], hostile_run["summary"]
    green2, summary2 = suite_run["green"], suite_run["summary"]
    rows = [
        *hostile_rows(hostile),
        *leak_rows(hostile),
        *suite_rows(green=green2, summary=summary2, report=suite),
        *matrix_rows(),
        *fuzz_rows(),
    ]
    if not green1:
        rows.append(("Hostile/leak test run", summary1, "green", False))
    report = ROOT / "RELIABILITY.md"
    kept = kept_rows(report.read_text()) if report.exists() else []
    table = render(rows, kept)
    print()
    print(table)
    report.write_text(
        "# Reliability report\n\n"
        f"Generated by `make reliability` on {now()} ({sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs); hostile and leak checks run {hostile_run['when']}, "
        f"suite in debug mode {suite_run['when']}. "
        f"Hostile-server timeout T = {HOSTILE_TIMEOUT:g} s; "
        f"{LEAK_CYCLES:,} leak cycles per API. See `scripts/reliability.py` for how each figure "
        "is measured and `.reliability/` for the logs. Rows whose check starts with "
        f'"{KEPT_PREFIX}" are written by hand from the regression tests they name and kept '
        "as they are when the table is rebuilt.\n\n" + table + "\n"
    )
    failed = [r[0] for r in rows if r[3] is False]
    failed += [line for line in kept if kept_row_failed(line)]
    print(f"\n{len(failed)} check(s) missed their target; RELIABILITY.md written.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
