"""`billing.key_last`: the key's balance update goes last in a task's transaction (on
PostgreSQL it locks the key's row until COMMIT), and nothing else moves or goes missing."""

from __future__ import annotations

from imagegate.accounts import billing
from imagegate.db.database import Step
from imagegate.db.tables import tasks
from imagegate.domain.task import Task, TaskStatus

S = billing.BillingStatements()


def task() -> Task:
    return Task(id="img_1", key_id="key_a", status=TaskStatus.IN_PROGRESS, progress=0,
                operation="generate", model="m", provider=None, request={"n": 2},
                result=None, error=None, created_at=0.0, started_at=0.0, completed_at=None,
                expires_at=60.0, lease_owner="w", lease_expires_at=30.0, attempts=1,
                upstream_task_id=None, unit_price=5, hold_amount=10)


def test_the_hold_goes_after_the_task_insert_and_the_rest_keeps_its_order() -> None:
    insert, extra = Step(tasks.insert(), {}), Step(tasks.insert(), {"x": 1})
    hold, entry = billing.hold_steps(S, task(), 1.0)
    steps = billing.key_last(S, [hold, entry, insert, extra])
    assert [id(s) for s in steps] == [id(entry), id(insert), id(extra), id(hold)]
    assert steps[-1].require == billing.HOLD


def test_a_settlement_and_a_refund_release_the_key_last() -> None:
    for steps in (billing.settle_steps(S, task(), 2, 1.0),
                  billing.refund_steps(S, task(), 1.0)):
        status = Step(tasks.update(), {"b": 1}, require="owned")
        ordered = billing.key_last(S, [status, *steps])
        assert ordered[-1].stmt is S.release
        assert [id(s) for s in ordered[:-1]] == [id(s) for s in [status, *steps]
                                                  if s.stmt is not S.release]
