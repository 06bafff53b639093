"""The small chaos run (`scripts/chaos.py --small`) as part of `make test`.

60 refunds through the local stack with the full fault mix (20% errors, 5% resets, 5% slow
answers beyond the worker's timeout, seeded), two tickets the emulator always rejects, two more
whose void only it always rejects (their refund must never be called: the void first), every
command delivered twice (every fourth copy forged with a key of its own), one token rotation,
and one SIGKILL of refund-worker mid-batch. chaos.py starts and stops
its own stack on free ports and exits non-zero on any broken invariant or a missed
calls-per-ticket goal; this test runs it and checks that every invariant line it printed holds,
the refund events' among them, and that the goal lines say met. The pure checks behind the
event invariants and the goal are table-tested in test_chaos_invariants.py. `make chaos` is the full run (500 tickets,
5 kills); docs/RELIABILITY.md explains both.
"""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The run itself (after the stack is up) takes about 2 minutes; the rest is the stack's
# start, which compiles when the sources changed.
TIMEOUT_S = 1800

INVARIANTS = (
    "every PUT answered 202",
    "every accepted ticket voided exactly once",
    "every accepted ticket refunded exactly once",
    "the DLQ holds exactly the tickets the emulator rejects",
    "both deliveries of every rejected ticket reached the DLQ",
    "every DLQ copy carries its reason",
    "every ticket whose void is refused dead-lettered as void_rejected",
    "no refund call for a ticket whose void was refused",
    "the statuses agree with the emulator's effects",
    "nothing stays on the queue",
    "no upstream call carried a key other than its ticket's K",
    "the gateway token rotated mid-run",
    "SIGKILLs landed mid-batch",
    "upstream calls failed at the configured transient rate",
    "every refunded ticket has one TicketRefunded id",
    "every dead-lettered message has one TicketRefundFailed id",
    "no event of another detail-type on the bus",
)

# Figures held to a goal (chaos_report.calls_goal_lines): each printed, and met.
GOALS = ("void calls per ticket", "refund calls per ticket", "calls per ticket (both)")


def test_small_chaos_run_keeps_every_invariant(tmp_path):
    started = time.monotonic()
    run = subprocess.run([sys.executable, str(ROOT / "scripts/chaos.py"), "--small", "--logs", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    print(run.stdout[-6000:])
    print(run.stderr[-3000:], file=sys.stderr)
    print(f"small chaos run: {time.monotonic() - started:.0f} s")
    assert run.returncode == 0, f"chaos --small failed (logs in {tmp_path})"
    lines = run.stdout.splitlines()
    for invariant in INVARIANTS:
        matching = [line for line in lines if invariant in line]
        assert matching, f"no line for: {invariant}"
        assert all(line.strip().startswith("[ok]") for line in matching), matching
    for goal in GOALS:
        matching = [line for line in lines if line.strip().startswith(goal + ":")]
        assert matching, f"no figure for: {goal}"
        assert all(line.rstrip().endswith(": met)") for line in matching), matching
    assert "chaos: PASS" in run.stdout
