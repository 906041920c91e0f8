import importlib.util
import sys
from pathlib import Path

from tools.integrations.solana.chain import LocalChain
from tools.money.settlement import FAULT_POINTS

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "crash_harness.py"
_spec = importlib.util.spec_from_file_location("crash_harness", _PATH)
harness = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("crash_harness", harness)
_spec.loader.exec_module(harness)


def test_crash_at_every_boundary_loses_and_duplicates_nothing():
    results = harness.run(1, quiet=True, first_seed=3)
    assert len(FAULT_POINTS) >= 8 and len(results) == len(FAULT_POINTS)
    assert all(r.crashes >= 1 for r in results)
    assert [r.violations for r in results if r.violations] == []
    assert sum(r.payouts_posted for r in results) > 0


class ForgetfulChain(LocalChain):
    """A broken RPC that forgets signatures after a restart: the harness must notice."""

    async def signature_state(self, signature):
        state = await super().signature_state(signature)
        return "absent" if self.expires and state == "finalized" else state


def test_the_harness_catches_a_double_payout():
    results = harness.run(
        2, quiet=True, first_seed=3, points=("payout_sent",), chain_class=ForgetfulChain
    )
    problems = [v for r in results for v in r.violations]
    assert any("finalized transfers" in v or "holds" in v for v in problems), problems
