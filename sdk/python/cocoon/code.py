"""The code interpreter's values: what box.run_code returns (CodeExecution: results,
logs, error, execution count, shaped like E2B's code-interpreter SDK), its contexts
(CodeContext), and the collector that turns the run's events (libcocoon's and the REST
API's NDJSON shapes) into them while calling the user's callbacks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .errors import CocoonError, InvalidArgument

# what run_code accepts; the old API ran "shell"/"sh" with /bin/sh and "python3" as python
LANGUAGES = {"python": "python", "python3": "python", "py": "python", "javascript": "javascript",
             "js": "javascript", "node": "javascript", "bash": "bash", "shell": "bash", "sh": "bash"}

_FORMATS = ("text", "html", "markdown", "svg", "png", "jpeg", "latex", "json", "javascript")


def language_of(language: Optional[str]) -> str:
    """cocoon's name of a language ("python", "javascript" or "bash")."""
    lang = LANGUAGES.get(str(language or "python").lower())
    if lang is None:
        raise InvalidArgument(f"language {language!r}: python, javascript or bash (also py, js, shell, sh)")
    return lang


@dataclass
class Result:
    """A value the code produced: the last expression's (is_main_result) or a display
    such as a matplotlib figure, in every form it has (png/jpeg are base64 text)."""

    text: Optional[str] = None
    html: Optional[str] = None
    markdown: Optional[str] = None
    svg: Optional[str] = None
    png: Optional[str] = None
    jpeg: Optional[str] = None
    latex: Optional[str] = None
    json: Optional[Any] = None
    javascript: Optional[str] = None
    is_main_result: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_event(cls, ev: Dict[str, Any]) -> "Result":
        known = {k: ev[k] for k in _FORMATS if k in ev}
        extra = {k: v for k, v in ev.items() if k not in _FORMATS and k not in ("type", "is_main_result")}
        return cls(is_main_result=bool(ev.get("is_main_result")), extra=extra, **known)

    def formats(self) -> List[str]:
        """The forms this result has ("text", "png", ...)."""
        return [k for k in _FORMATS if getattr(self, k) is not None] + list(self.extra)

    def __str__(self) -> str:
        return self.text or ""


@dataclass
class Logs:
    """What the run printed, in the pieces it came in."""

    stdout: List[str] = field(default_factory=list)
    stderr: List[str] = field(default_factory=list)


@dataclass
class CodeError:
    """The exception the code raised: its class name, message and formatted traceback.
    The context is kept."""

    name: str
    value: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


@dataclass
class CodeExecution:
    """One run_code: `results` (the last expression's value is the one with
    is_main_result; `text` is its text), `logs.stdout`/`logs.stderr`, `error` (None
    when the code did not raise) and the context's `execution_count`. `stdout` and
    `stderr` join the logs, as the old ExecResult of run_code had them."""

    results: List[Result] = field(default_factory=list)
    logs: Logs = field(default_factory=Logs)
    error: Optional[CodeError] = None
    execution_count: Optional[int] = None

    @property
    def text(self) -> Optional[str]:
        for r in self.results:
            if r.is_main_result:
                return r.text
        return None

    @property
    def stdout(self) -> str:
        return "".join(self.logs.stdout)

    @property
    def stderr(self) -> str:
        return "".join(self.logs.stderr)

    @property
    def ok(self) -> bool:
        return self.error is None

    def check(self) -> "CodeExecution":
        """Raises CodeFailed if the code raised; returns self."""
        if self.error is not None:
            raise CodeFailed(self)
        return self


class CodeFailed(CocoonError):
    """check() of a run whose code raised; `.execution` is the run."""

    def __init__(self, execution: CodeExecution):
        err = execution.error
        super().__init__(f"the code raised {err}" if err else "the code raised")
        self.execution = execution


@dataclass
class CodeContext:
    """A code context of a box: its id (run_code(context=id)), language and directory.
    The default context of a language has the language's name as id."""

    id: str
    language: str
    cwd: str

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "CodeContext":
        return cls(id=str(d["id"]), language=str(d.get("language", "")), cwd=str(d.get("cwd", "")))


Callback = Optional[Callable[[Any], Any]]


class Collector:
    """Takes a run's events (dicts) in order: builds the CodeExecution and calls the
    callbacks (on_stdout/on_stderr with text, on_result with a Result, on_error with a
    CodeError). A callback that raises stops the run: event() returns False, and
    finish() raises what it raised."""

    def __init__(self, on_stdout: Callback = None, on_stderr: Callback = None, on_result: Callback = None,
                 on_error: Callback = None):
        self.execution = CodeExecution()
        self.callbacks = (on_stdout, on_stderr, on_result, on_error)
        self.ended = False
        self.failure: Optional[BaseException] = None
        self.transport_error: Optional[str] = None  # the server's CocoonError event

    def event(self, ev: Dict[str, Any]) -> bool:
        """True to go on, False to interrupt the run."""
        if self.failure is not None:
            return False
        on_stdout, on_stderr, on_result, on_error = self.callbacks
        ex = self.execution
        t = ev.get("type")
        cb, arg = None, None
        if t == "stdout":
            ex.logs.stdout.append(ev.get("text", ""))
            cb, arg = on_stdout, ev.get("text", "")
        elif t == "stderr":
            ex.logs.stderr.append(ev.get("text", ""))
            cb, arg = on_stderr, ev.get("text", "")
        elif t == "result":
            r = Result.from_event(ev)
            ex.results.append(r)
            cb, arg = on_result, r
        elif t == "error":
            if ev.get("name") == "CocoonError" and not ev.get("traceback"):
                self.transport_error = str(ev.get("value", ""))  # the run failed after it began
                return True
            ex.error = CodeError(str(ev.get("name", "")), str(ev.get("value", "")), str(ev.get("traceback", "")))
            cb, arg = on_error, ex.error
        elif t == "number_of_executions":
            ex.execution_count = ev.get("execution_count")
            self.ended = True
        if cb is not None:
            try:
                cb(arg)
            except BaseException as e:  # noqa: BLE001 - re-raised by finish()
                self.failure = e
                return False
        return True

    def finish(self, what: str) -> CodeExecution:
        if self.failure is not None:
            raise self.failure
        if self.transport_error is not None:
            raise CocoonError(f"{what}: {self.transport_error}")
        if not self.ended:
            raise CocoonError(f"{what}: the event stream ended before the run did")
        return self.execution
