"""What the async-task fakes (dimilinks, apimart) share: tasks whose progress advances, the
knobs that make them fail, and planned faults for the task-polling route.

Progress advances over `latency` seconds from submission, or, deterministically for tests,
by `progress_per_poll` points on every poll of the task (then `latency` is ignored). The
dialect subclasses check requests by their own seed's rules (`dimilinks_rules`,
`apimart_rules`), which also decide the pixels a task renders, and present these tasks in
their seed's shapes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from imagegate.testing.upstreams import delivery_rules
from imagegate.testing.upstreams.common import FakeUpstream, Fault, RecordedRequest

Phase = Literal["queued", "running", "succeeded", "failed"]
# A prompt containing this word makes the task fail as a content-policy violation, as a
# real upstream's moderation would after accepting the task.
FORBIDDEN_WORD = "forbidden"


@dataclass
class Failure:
    kind: Literal["content_policy", "generic"]
    message: str


@dataclass
class FakeTask:
    id: str
    prompt: str
    model: str
    n: int
    width: int
    height: int
    output_format: str
    created: float  # epoch seconds, as reported
    started: float  # monotonic, what progress is measured from
    failure: Failure | None = None
    polls: int = 0
    completed: float | None = None
    results: list[str] = field(default_factory=list)  # result URLs, once finished


class FakeTaskUpstream(FakeUpstream):
    """Base of the fakes whose submit answers a task id that is then polled."""

    def __init__(self, *, api_key: str = "sk-fake", latency: float = 0.0,
                 progress_per_poll: int | None = None) -> None:
        super().__init__(api_key=api_key, latency=latency)
        self.progress_per_poll = progress_per_poll
        self.tasks: dict[str, FakeTask] = {}
        self._poll_faults: list[Fault] = []
        self._task_failures: list[Failure] = []

    # ------------------------------------------------------------------ knobs

    def fail_task_next(self, message: str = "the upstream model failed to produce an image",
                       *, times: int = 1) -> None:
        """The next `times` accepted tasks end as failed with a generic (server) error."""
        self._task_failures.extend(Failure("generic", message) for _ in range(times))

    def fail_polls(self, status: int = 500, body: Any = None, *, times: int = 1,
                   headers: dict[str, str] | None = None,
                   kind: Literal["http", "drop", "hang"] = "http") -> None:
        """The next `times` task polls answer `status` (the dialect's error body), or
        drop the connection, or never answer (`kind`)."""
        self._poll_faults.append(Fault(status, body, dict(headers or {}), times, kind))

    # ------------------------------------------------------------------ tasks

    def create_task(self, record: RecordedRequest, prefix: str,
                    size: tuple[int, int]) -> FakeTask:
        """Accept a request the dialect's rules passed; `size` is the pixels it renders."""
        fields = record.fields()
        prompt = str(fields.get("prompt") or "")
        n, (width, height) = delivery_rules.delivered(prompt, int(fields.get("n") or 1), size)
        failure: Failure | None = None
        if FORBIDDEN_WORD in prompt.lower():
            failure = Failure("content_policy",
                              "Your request was rejected by the safety system: the prompt "
                              "may contain content that is not allowed.")
        elif self._task_failures:
            failure = self._task_failures.pop(0)
        task = FakeTask(
            id=self.new_id(prefix), prompt=prompt, model=str(fields.get("model") or ""),
            n=n, width=width, height=height,
            output_format=str(fields.get("output_format") or "png"),
            created=time.time(), started=time.monotonic(), failure=failure,
        )
        self.tasks[task.id] = task
        self.submissions += 1
        return task

    def advance(self, task: FakeTask, *, poll: bool = True) -> tuple[Phase, int]:
        """The task's phase and progress now (a poll counts towards `progress_per_poll`)."""
        if task.completed is None:
            if poll:
                task.polls += 1
            if self.progress_per_poll is not None:
                pct = task.polls * self.progress_per_poll
            elif self.latency > 0:
                pct = int(100 * (time.monotonic() - task.started) / self.latency)
            else:
                pct = 100
            if pct < 100:
                return ("queued" if pct <= 0 else "running"), max(0, pct)
            self.finish(task)
        return ("failed" if task.failure else "succeeded"), 100

    def finish(self, task: FakeTask) -> None:
        task.completed = time.time()
        if task.failure is None:
            task.results = [self.result_url(task, i, self.png(task.width, task.height,
                                                                f"{task.prompt}/{i}"))
                            for i in range(task.n)]

    def result_url(self, task: FakeTask, index: int, data: bytes) -> str:
        """Where result `index` is served (subclasses pick their dialect's URL form)."""
        del task, index
        return self.url + self.store_file(data)

    async def wait_finished(self, task: FakeTask) -> None:
        """A sync submit: wait out the latency, then finish the task."""
        await self.delay()
        self.finish(task)

    async def begin_poll(self, request: web.Request) -> tuple[FakeTask | None,
                                                              web.StreamResponse | None]:
        """Record a poll, check auth, apply a planned poll fault, find the task; returns
        (task, None) or (None, the response to send)."""
        _, answer = await self.begin(request, submit=False)
        if answer is not None:
            return None, answer
        if self._poll_faults:
            fault = self._poll_faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._poll_faults.pop(0)
            return None, await self.fault_response(request, fault)
        task = self.tasks.get(request.match_info["task_id"])
        if task is None:
            return None, self.json_response(self.error_body(404, "task not found"), status=404)
        return task, None
