"""Secrets and unsafe loading.

- A canary API key given the usual ways (environment, ``.env``, a server that echoes it back in an
  error) never appears in any file a run writes, in its logs (``--verbose``) or on its terminal.
- Nothing in the source tree calls ``eval``/``exec``/``compile`` or loads a pickle
  (``pickle.load(s)``, ``Unpickler``, ``torch.load``, ``numpy.load(allow_pickle=True)``, ...),
  except the dataset's restricted unpickler; an AST scan proves it, and a run of the demo is
  watched at runtime for any unpickling at all.
- The restricted unpickler refuses every way a pickle can name a global.
"""
from __future__ import annotations

import ast
import io
import os
import pickle
import pickletools
from pathlib import Path

import pytest
from rel_util import CANARY_KEY, DEMO, NOISE, REPO, run_eval, subprocess_env

import nrvl.data.mmbench as mmb
from nrvl import evaluate
from nrvl.data import DatasetError

SOURCE_DIRS = ("nrvl", "kernels", "eval", "bench")
ALLOWED_UNPICKLING = {("nrvl/data/mmbench.py", "pickle.Unpickler")}  # NoGlobalsUnpickler's base class


def _all_bytes_under(*roots: Path):
    for root in roots:
        for p in Path(root).rglob("*"):
            if p.is_file() and not p.is_symlink():
                yield p, p.read_bytes()


def assert_no_canary(*roots: Path, texts=()):
    needle = CANARY_KEY.encode()
    leaks = [str(p) for p, data in _all_bytes_under(*roots) if needle in data]
    leaks += [f"text #{i}" for i, t in enumerate(texts) if CANARY_KEY in t]
    assert not leaks, f"the API key leaked into {leaks}"


# ----------------------------------------------------------------------------------- the key never leaks

def test_canary_key_from_the_environment_never_reaches_files_or_logs(tmp_path, cache_dir, demo_ready):
    from judge_server import FakeJudgeServer
    from rel_util import hash_rule

    work, tmp, hf = tmp_path / "work", tmp_path / "tmpdir", tmp_path / "hf"
    tmp.mkdir()
    with FakeJudgeServer(api_key=CANARY_KEY, rule=hash_rule, echo_key=True) as srv:
        # Faults make the judge log retries and errors; --verbose logs everything it can.
        # The first request is the pre-flight: a prose reply passes it; the rest hit judge requests.
        srv.inject("prose", "500", "429", "badjson", "prose")
        env = subprocess_env(cache_dir, OPENAI_API_KEY=CANARY_KEY, OPENAI_BASE_URL=srv.base_url, TMPDIR=tmp,
                             HF_HOME=hf)
        rc, err = run_eval([*DEMO, *NOISE, "--limit", "4", "--judge", "gpt-4o", "--device", "cpu", "--verbose",
                            "--work-dir", str(work)], env, tmp_path)
        assert rc == 0, err[-3000:]
        assert f"Bearer {CANARY_KEY}" in srv.auth_headers  # the key was really used
    assert any(work.rglob("*_gpt-4o_rating.json"))
    out = (tmp_path / "child.out").read_text()
    assert_no_canary(tmp_path, texts=[out, err])  # work dir, TMPDIR, HF_HOME, stdout and stderr


def test_canary_key_from_dotenv_and_echoed_by_a_rejecting_server_never_leaks(tmp_path, cache_dir, demo_ready):
    from judge_server import FakeJudgeServer

    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={CANARY_KEY}\n")
    with FakeJudgeServer(api_key="the-right-key", echo_key=True) as srv:  # 401 whose message holds our key
        env = subprocess_env(cache_dir, OPENAI_BASE_URL=srv.base_url)
        rc, err = run_eval([*DEMO, "--limit", "1", "--judge", "gpt-4o", "--verbose", "--work-dir",
                            str(tmp_path / "work")], env, tmp_path)
        assert f"Bearer {CANARY_KEY}" in srv.auth_headers  # read from .env and sent
    assert rc == 2 and "API key was rejected" in err, err[-2000:]
    leaks = [p for p, data in _all_bytes_under(tmp_path) if CANARY_KEY.encode() in data and p.name != ".env"]
    assert not leaks and CANARY_KEY not in err and CANARY_KEY not in (tmp_path / "child.out").read_text()


def test_canary_key_in_process_logs_and_objects(tmp_path, demo_ready, caplog, capsys, monkeypatch):
    import logging

    from judge_server import FakeJudgeServer
    from rel_util import hash_rule

    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    caplog.set_level(logging.DEBUG)
    with FakeJudgeServer(api_key=CANARY_KEY, rule=hash_rule) as srv:
        srv.inject("500", "500")
        assert evaluate.main([*DEMO, "--limit", "2", "--judge", "gpt-4o", "--judge-base-url", srv.base_url,
                              "--device", "cpu", "--verbose", "--work-dir", str(tmp_path / "w")]) == 0
    captured = capsys.readouterr()
    records = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert_no_canary(tmp_path / "w", texts=[captured.out, captured.err, records])


USERINFO_KEY = "sk-nrvl-userinfo-canary-93d1"


def test_verbose_never_logs_a_base_url_holding_credentials(tmp_path, cache_dir, demo_ready):
    """--verbose logs at INFO, where HTTP clients log each request's full URL: a judge base URL with
    userinfo (http://user:key@host/v1) must not reach the terminal."""
    from judge_server import FakeJudgeServer

    with FakeJudgeServer() as srv:
        url = srv.base_url.replace("http://", f"http://nrvl:{USERINFO_KEY}@")
        env = subprocess_env(cache_dir, OPENAI_API_KEY="sk-header-key")
        rc, err = run_eval([*DEMO, "--limit", "1", "--judge", "gpt-4o", "--judge-base-url", url, "--device", "cpu",
                            "--verbose", "--work-dir", str(tmp_path / "work")], env, tmp_path)
        judged = srv.total
    assert rc == 0, err[-3000:]
    assert judged >= 2  # the preflight and the one question went through that URL
    assert "INFO nrvl.judge" in err  # --verbose did log at INFO
    out = (tmp_path / "child.out").read_text()
    assert USERINFO_KEY not in err and USERINFO_KEY not in out, [ln for ln in err.splitlines() if USERINFO_KEY in ln]
    assert not [p for p, data in _all_bytes_under(tmp_path / "work") if USERINFO_KEY.encode() in data]


def test_the_log_filter_masks_userinfo_in_any_url():
    import logging

    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s %r", None, None)
    record.args = ("POST", "https://u:s3cret@api.example/v1/chat", "HTTP/1.1 200 OK")
    assert evaluate._RedactUserinfo().filter(record)
    assert record.getMessage() == "HTTP Request: POST https://***@api.example/v1/chat 'HTTP/1.1 200 OK'"
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "mail me@example.org at http://host/v1", None, None)
    evaluate._RedactUserinfo().filter(plain)
    assert plain.getMessage() == "mail me@example.org at http://host/v1"


# ----------------------------------------------------------------------------------- no eval/exec, no pickle loads

FORBIDDEN_CALLS = {"eval", "exec", "compile", "builtins.eval", "builtins.exec", "builtins.compile"}
FORBIDDEN_LOADERS = {
    "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads", "_pickle.Unpickler",
    "cPickle.load", "cPickle.loads", "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads",
    "joblib.load", "torch.load", "torch.serialization.load", "pandas.read_pickle", "marshal.load",
    "marshal.loads", "shelve.open", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "jsonpickle.decode",
}


class _Scanner(ast.NodeVisitor):
    """Finds eval/exec/compile calls and pickle-style loaders, resolving import aliases."""

    def __init__(self):
        self.alias: dict[str, str] = {}
        self.found: list[tuple[int, str]] = []

    def visit_Import(self, node):
        for a in node.names:
            self.alias[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]

    def visit_ImportFrom(self, node):
        for a in node.names:
            self.alias[a.asname or a.name] = f"{node.module}.{a.name}" if node.module else a.name

    def dotted(self, node):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        head = self.alias.get(node.id, node.id)
        head = {"np": "numpy", "pd": "pandas"}.get(head, head)
        return ".".join([head, *reversed(parts)])

    def check(self, node, name):
        if name is None:
            return
        if name in FORBIDDEN_CALLS and isinstance(node, ast.Call) or name in FORBIDDEN_LOADERS:
            self.found.append((node.lineno, name))
        elif name == "numpy.load" and isinstance(node, ast.Call) and any(
                k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                for k in node.keywords):
            self.found.append((node.lineno, "numpy.load(allow_pickle=...)"))

    def visit_Call(self, node):
        self.check(node, self.dotted(node.func))
        self.generic_visit(node)

    def visit_Attribute(self, node):
        name = self.dotted(node)
        if name in FORBIDDEN_LOADERS:  # also a reference without a call: a base class, a default argument
            self.found.append((node.lineno, name))
        else:
            self.generic_visit(node)

    def visit_Name(self, node):
        name = self.alias.get(node.id)
        if name in FORBIDDEN_LOADERS:
            self.found.append((node.lineno, name))


def scan(source: str) -> list[tuple[int, str]]:
    scanner = _Scanner()
    scanner.visit(ast.parse(source))
    return sorted(set(scanner.found))


def test_the_scanner_finds_what_it_looks_for():
    code = ("import pickle as pk\nfrom torch import load as tl\nimport numpy as np\nimport builtins\n"
            "eval(x)\nexec('1')\nbuiltins.eval(s)\npk.loads(b)\ntl(f)\nnp.load(f, allow_pickle=True)\n"
            "class U(pk.Unpickler): pass\nimport torch\ntorch.load(p, weights_only=True)\nmodel.eval()\n"
            "np.load(f)\nre.compile('x')\n")
    assert [name for _, name in scan(code)] == [
        "eval", "exec", "builtins.eval", "pickle.loads", "torch.load", "numpy.load(allow_pickle=...)",
        "pickle.Unpickler", "torch.load"]


def test_source_tree_has_no_eval_exec_or_pickle_loading():
    files = [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))] + [REPO / "setup.py"]
    assert len(files) > 40
    hits = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        for line, name in scan(path.read_text(encoding="utf-8")):
            if (rel, name) not in ALLOWED_UNPICKLING:
                hits.append(f"{rel}:{line}: {name}")
    assert not hits, "unsafe calls:\n" + "\n".join(hits)
    # The one allowed place is really there (the scan would notice it moving).
    assert scan((REPO / "nrvl/data/mmbench.py").read_text()) and all(
        n == "pickle.Unpickler" for _, n in scan((REPO / "nrvl/data/mmbench.py").read_text()))


def test_a_demo_run_unpickles_nothing(tmp_path, demo_ready, monkeypatch):
    """Runtime check: model, processor, data, judge and rating load without any unpickling."""
    import torch

    calls = []

    def forbid(name, real):
        def wrapper(*a, **k):
            calls.append(name)
            return real(*a, **k)
        return wrapper

    monkeypatch.setattr(pickle, "load", forbid("pickle.load", pickle.load))
    monkeypatch.setattr(pickle, "loads", forbid("pickle.loads", pickle.loads))
    monkeypatch.setattr(pickle, "Unpickler", forbid("pickle.Unpickler", pickle.Unpickler))
    monkeypatch.setattr(torch, "load", forbid("torch.load", torch.load))
    # A fresh model folder: building and loading it from disk both happen in this run.
    monkeypatch.setenv("NRVL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "data").mkdir(parents=True)
    os.symlink(demo_ready.parent, tmp_path / "cache" / "data" / "MMBench_Video_demo")
    assert evaluate.main([*DEMO, *NOISE, "--limit", "2", "--judge", "exact_matching", "--device", "cpu",
                          "--work-dir", str(tmp_path / "w")]) == 0
    assert calls == []


# ----------------------------------------------------------------------------------- the restricted unpickler

def _protocol0_global(module: str, name: str) -> bytes:
    # GLOBAL opcode ('c'), then call it with a tuple: what hand-made exploit pickles use.
    return f"c{module}\n{name}\n(S'touch PWNED'\ntR.".encode()


def _inst_opcode() -> bytes:
    return b"(S'touch PWNED'\nios\nsystem\n."  # INST: import os.system and call it


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


PAYLOADS = {
    "GLOBAL-os.system": _protocol0_global("os", "system"),
    "GLOBAL-builtins.eval": _protocol0_global("builtins", "eval"),
    "INST-os.system": _inst_opcode(),
    "STACK_GLOBAL-reduce": pickle.dumps({"v": _Evil()}, protocol=4),
    "nested-in-dict-value": pickle.dumps({"v": [b"ok", {"x": _Evil()}]}, protocol=5),
    "class-instance": pickle.dumps({"v": io.BytesIO(b"x")}, protocol=2),
}


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_restricted_unpickler_refuses_globals(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ops = {op.name for op, _, _ in pickletools.genops(payload)}
    assert ops & {"GLOBAL", "STACK_GLOBAL", "INST"}, ops  # the payload really names a global
    path = tmp_path / "chunk.pkl"
    path.write_bytes(payload)
    # Refused by the opcode scan (a list, a text-protocol string: not a flat str -> bytes dict)
    # or, at the global itself, by the unpickler; either way before anything is called.
    with pytest.raises(DatasetError, match="refusing (to load global|opcode)"):
        mmb.load_video_chunk(path)
    assert not (tmp_path / "PWNED").exists()
    with open(path, "rb") as fh:  # and the unpickler alone refuses the global by name
        with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
            mmb.NoGlobalsUnpickler(fh).load()
    assert not (tmp_path / "PWNED").exists()


def test_restricted_unpickler_refuses_persistent_ids_and_loads_plain_data(tmp_path):
    class WithPersistentId(pickle.Pickler):
        def persistent_id(self, obj):
            return "outside" if obj == b"x" else None

    buf = io.BytesIO()
    WithPersistentId(buf, protocol=4).dump({"v": b"x"})
    path = tmp_path / "chunk.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(DatasetError, match="refusing to load a persistent id"):
        mmb.load_video_chunk(path)
    path.write_bytes(pickle.dumps({"vid_1": b"\x00\x00\x00\x18ftypmp42"}, protocol=5))
    assert mmb.load_video_chunk(path) == {"vid_1": b"\x00\x00\x00\x18ftypmp42"}
