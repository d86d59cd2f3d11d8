"""A real HTTP, OpenAI-compatible chat-completions server on 127.0.0.1 for judge tests.

It grades by a rule (by default: candidate answer equal to the ground truth,
ignoring case and surrounding space, gives "3", anything else "0"), so tests can
predict every score, and it can inject faults per request:

- ``"429"``: HTTP 429 with ``Retry-After`` (seconds, default ``"0"``; set
  :attr:`FakeJudgeServer.retry_after`);
- ``"500"``: HTTP 500;
- ``"slow"``: answer correctly but only after :attr:`FakeJudgeServer.slow_s`
  seconds, past a short client timeout;
- ``"badjson"``: HTTP 200 whose body is not JSON;
- ``"prose"``: a valid completion whose content is prose (``"Rating: 2"``);
- ``"empty"``: a valid completion with empty content;
- ``"failmsg"``: a valid completion whose content is VLMEvalKit's failure message;
- ``"400"``: HTTP 400 (``invalid_request_error``), which a client must not retry;
- replies of unexpected shape, all HTTP 200: ``"parts"`` (the normal reply as a
  list of content parts, ``[{"type": "text", "text": "3"}]``), ``"number"``
  (content the JSON number 3), ``"choice_str"`` (``choices`` a list of plain
  strings), ``"bad_utf8"`` (a JSON body with bytes that are not UTF-8) and
  ``"html"`` (a ``text/html`` web page).

With ``max_tokens_limit`` set, a request asking for more tokens than that
(``max_tokens`` or ``max_completion_tokens``) gets HTTP 400, as a local server
with a small context answers.

Faults are queued with :meth:`FakeJudgeServer.inject`: for candidate answers
containing a given text, or for any request, each queued fault is used once, in
order. The server counts hits per candidate answer, keeps the request bodies
(bounded), records the Authorization headers it saw, and tracks how many
requests are in flight at once (``max_in_flight``). It is bounded: it refuses
requests past ``max_requests`` and shuts itself down after ``lifetime_s``.

Usage::

    with FakeJudgeServer(latency=0.01) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

__all__ = ["FakeJudgeServer", "parse_user_prompt", "equal_rule"]

_PROMPT_RE = re.compile(
    r"^Question: (?P<question>.*)\nGroundtruth answer: (?P<answer>.*)\n"
    r"Candidate answer: (?P<prediction>.*)\nYour response: $",
    re.S,
)


def parse_user_prompt(text: str) -> Optional[dict]:
    """Split the judge's user message back into question, answer and prediction."""
    m = _PROMPT_RE.match(text)
    return m.groupdict() if m else None


def equal_rule(question: str, answer: str, prediction: str) -> str:
    """Default grading rule: "3" for an exact (case/space-insensitive) match, else "0"."""
    return "3" if prediction.strip().lower() == answer.strip().lower() else "0"



#: Faults answered with an HTTP error: status, error type, message.
_ERROR_FAULTS = {"500": (500, "server_error", "internal error"),
                 "400": (400, "invalid_request_error", "content filter triggered")}
#: Faults answered with a 200 whose body is not a chat completion: bytes, content type.
_RAW_FAULTS = {"badjson": (b'{"id": "chatcmpl-x", "choices": [', "application/json"),
               "bad_utf8": (b'{"id": "chatcmpl-x", "choices": "\xff\xfe"}', "application/json"),
               "html": (b"<html><body>Welcome</body></html>", "text/html")}

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms on Linux), which would cap throughput far below the set latency.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format, *args):  # silence the per-request stderr log
        return

    def _send_json(self, status: int, obj, headers: Optional[dict] = None) -> None:
        self._send_raw(status, json.dumps(obj).encode(), headers)

    def _send_raw(self, status: int, body: bytes, headers: Optional[dict] = None,
                  content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the client gave up (e.g. timed out on a slow reply)

    def do_GET(self):  # noqa: N802 - http.server naming
        owner: FakeJudgeServer = self.server.owner
        if self.path.rstrip("/").endswith("/models"):
            models = sorted(owner.models or [])
            self._send_json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):  # noqa: N802 - http.server naming
        owner: FakeJudgeServer = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        owner._enter()
        try:
            self._handle_post(owner, raw)
        finally:
            owner._leave()

    def _handle_post(self, owner: "FakeJudgeServer", raw: bytes) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        if not owner._admit():
            self._send_json(503, {"error": {"message": "fake server request budget spent", "type": "server_error"}})
            return
        auth = self.headers.get("Authorization", "")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        owner._record(body, auth)
        if owner.api_key is not None and auth != f"Bearer {owner.api_key}":
            # OpenAI echoes a masked key; echo_key echoes it whole, to test that clients scrub it.
            shown = auth[len("Bearer "):] if owner.echo_key else "***"
            self._send_json(401, {"error": {"message": f"Incorrect API key provided: {shown}.",
                                            "type": "invalid_request_error", "code": "invalid_api_key"}})
            return
        model = body.get("model")
        if owner.models is not None and model not in owner.models:
            self._send_json(404, {"error": {"message": f"The model `{model}` does not exist",
                                            "type": "invalid_request_error", "code": "model_not_found"}})
            return

        messages = body.get("messages") or []
        user = messages[-1].get("content") if messages else ""
        if isinstance(user, list):  # content parts
            user = "".join(p.get("text", "") for p in user if isinstance(p, dict))
        fields = parse_user_prompt(user or "")
        prediction = fields["prediction"] if fields else (user or "")
        with owner._lock:
            owner.hits[prediction] += 1
        fault = owner._take_fault(prediction)

        if owner.latency:
            time.sleep(owner.latency)
        if fault == "429":
            self._send_json(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
                            headers={"Retry-After": owner.retry_after})
            return
        if fault in _ERROR_FAULTS:
            status, kind, message = _ERROR_FAULTS[fault]
            self._send_json(status, {"error": {"message": message, "type": kind}})
            return
        if fault in _RAW_FAULTS:
            body_bytes, content_type = _RAW_FAULTS[fault]
            self._send_raw(200, body_bytes, content_type=content_type)
            return
        asked = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        if owner.max_tokens_limit is not None and asked > owner.max_tokens_limit:
            self._send_json(400, {"error": {
                "message": f"This model's maximum context length is {owner.max_tokens_limit} tokens. "
                           f"However, you requested {asked} tokens", "type": "BadRequestError", "code": 400}})
            return
        if fault == "slow":
            time.sleep(owner.slow_s)

        if fault == "prose":
            content = "Rating: 2"
        elif fault == "empty":
            content = ""
        elif fault == "failmsg":
            content = "Failed to obtain answer via API."
        elif fields is None:
            # not a judge prompt: the preflight 'hello', or a model query when a chat rule is set
            content = owner.chat(user or "") if owner.chat is not None else "Hello! How can I help you today?"
        else:
            content = owner.rule(fields["question"], fields["answer"], fields["prediction"])
        prompt_tokens = max(1, sum(len(str(m.get("content", "")).split()) for m in messages))
        completion_tokens = max(1, len(content.split()))
        message_content = content
        if fault == "parts":
            message_content = [{"type": "text", "text": content}]
        elif fault == "number":
            message_content = 3
        choice = {"index": 0, "message": {"role": "assistant", "content": message_content}, "finish_reason": "stop"}
        self._send_json(200, {
            "id": f"chatcmpl-{owner.total}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [content] if fault == "choice_str" else [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # do not wait for handlers still sleeping on a slow reply
    allow_reuse_address = True
    request_queue_size = 128
    owner: "FakeJudgeServer"


class FakeJudgeServer:
    """OpenAI-compatible judge on ``127.0.0.1:<free port>``; see the module docstring.

    Args:
        latency: seconds every request waits before answering.
        rule: ``rule(question, answer, prediction) -> reply`` grading function.
        api_key: if set, requests must carry ``Authorization: Bearer <api_key>`` (else 401).
        models: if set, a request for any other model gets 404 ``model_not_found``.
        slow_s: how long a ``"slow"`` fault waits.
        retry_after: the ``Retry-After`` header value sent with a ``"429"`` fault.
        echo_key: put the presented (wrong) key in the 401 message, as a careless server might.
        chat: ``chat(user_text) -> reply`` for requests that are not judge prompts (a fake model);
            by default they get a greeting.
        max_requests: chat requests served before the server answers 503 to everything.
        max_tokens_limit: if set, a request asking for more completion tokens gets HTTP 400.
        lifetime_s: the server shuts itself down after this many seconds.
    """

    def __init__(self, *, latency: float = 0.0, rule: Callable[[str, str, str], str] = equal_rule,
                 api_key: Optional[str] = None, models: Optional[set] = None, slow_s: float = 2.0,
                 retry_after: str = "0", echo_key: bool = False, max_requests: int = 100_000,
                 chat: Optional[Callable[[str], str]] = None,
                 lifetime_s: float = 300.0, max_tokens_limit: Optional[int] = None):
        self.latency = latency
        self.rule = rule
        self.api_key = api_key
        self.models = set(models) if models is not None else None
        self.slow_s = slow_s
        self.retry_after = retry_after
        self.echo_key = echo_key
        self.chat = chat
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self.max_tokens_limit = max_tokens_limit
        self.hits: Counter = Counter()
        self.bodies: deque = deque(maxlen=10_000)
        self.auth_headers: set = set()
        self.request_times: list = []
        self.total = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: list = []  # [(match or None, deque of faults)]
        self._lock = threading.Lock()
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "FakeJudgeServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-judge-server", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> "FakeJudgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- fault injection -------------------------------------------------
    def inject(self, *faults: str, match: Optional[str] = None) -> None:
        """Queue faults for the next requests whose candidate answer contains ``match``
        (any request if ``match`` is None). Each fault is used once, in order."""
        known = {"429", "500", "slow", "badjson", "prose", "empty", "failmsg", "400",
                 "parts", "number", "choice_str", "bad_utf8", "html"}
        for f in faults:
            if f not in known:
                raise ValueError(f"fault must be one of {sorted(known)}, got {f!r}")
        with self._lock:
            self._faults.append((match, deque(faults)))

    def _take_fault(self, prediction: str) -> Optional[str]:
        with self._lock:
            for match, queue in self._faults:
                if queue and (match is None or match in prediction):
                    return queue.popleft()
        return None

    # -- bookkeeping -----------------------------------------------------
    def _admit(self) -> bool:
        with self._lock:
            if self.total >= self.max_requests:
                return False
            self.total += 1
            self.request_times.append(time.monotonic())
            return True

    def _record(self, body: dict, auth: str) -> None:
        with self._lock:
            self.bodies.append(body)
            self.auth_headers.add(auth)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def judged(self) -> int:
        """Requests that carried a judge prompt (the preflight 'hello' excluded)."""
        with self._lock:
            return sum(n for p, n in self.hits.items() if p != "hello")


def main(argv=None) -> int:
    """Serve from the command line (used by bench/ to keep the server out of the client's process).

    Prints ``PORT <n>`` on stdout once listening, then serves until ``--lifetime`` seconds pass
    or stdin closes.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="fake OpenAI-compatible judge on 127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--lifetime", type=float, default=300.0)
    args = parser.parse_args(argv)
    server = FakeJudgeServer(latency=args.latency, lifetime_s=args.lifetime).start()
    print(f"PORT {server.port}", flush=True)
    try:
        sys.stdin.read()  # returns when the parent closes our stdin (or dies)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
