"""The ``nrvl`` command: parses arguments and dispatches; heavy imports happen after parsing.

Subcommands:

* ``nrvl list`` -- the noises, with family and description;
* ``nrvl corrupt INPUT --noise NAME|all|FAMILY --ratio R [--frames N | --all-frames] --out DIR``;
* ``nrvl gallery [INPUT] --ratio R --out FILE.png``;
* ``nrvl eval ...`` and ``nrvl report ...`` -- handed unparsed to ``nrvl.evaluate.main(argv)``
  and ``nrvl.report.main(argv)``.

Errors print one line to stderr and exit with code 2 (``--verbose`` adds the traceback).
Python warnings raised while a command runs are shown when it ends, one
``[nrvl] warning: ...`` line each; an error exit keeps to its one error line, which counts
them (``--verbose`` shows them). SIGTERM stops a command the way Ctrl-C does (exit 143, 130 for Ctrl-C):
what it finished is kept, its temporary files are removed.
This module imports no torch: ``nrvl --help`` and argument errors stay instant.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import traceback
import warnings

from nrvl import __version__

# name -> (module, help); these parse their own arguments.
PASSTHROUGH = {
    "eval": ("nrvl.evaluate", "run the MMBench-Video evaluation (arguments go to nrvl.evaluate)"),
    "report": ("nrvl.report", "build a robustness report (arguments go to nrvl.report)"),
}
COMMAND_MODULES = ("nrvl.commands.listing", "nrvl.commands.corrupt", "nrvl.commands.gallery")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit code 2, as argparse)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nrvl", description="NRVL: noise robustness of video LLMs.")
    parser.add_argument("--version", action="version", version=f"nrvl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        p = importlib.import_module(module).add_parser(sub)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="print tracebacks (and the warnings) on errors")
    for name, (_, help_) in PASSTHROUGH.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command runs so it stops (and cleans up) as on Ctrl-C."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        raise Terminated("terminated")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _show_warnings(caught: list) -> None:
    """Each distinct warning as one ``[nrvl] warning: ...`` line on stderr."""
    seen = set()
    for w in caught:
        text = " ".join(str(w.message).split()) or w.category.__name__
        if text not in seen:
            seen.add(text)
            print(f"[nrvl] warning: {text}", file=sys.stderr)


def _os_error_text(exc: OSError) -> str:
    """``cannot write PATH: reason`` (our writers mark their errors), ``PATH: reason``, or the message."""
    if not exc.strerror:
        return " ".join(str(exc).split()) or type(exc).__name__
    path = getattr(exc, "nrvl_path", None) or exc.filename
    if path is None:
        return exc.strerror
    return f"{'cannot write ' if getattr(exc, 'nrvl_write', False) else ''}{path}: {exc.strerror}"


def _fail(prog: str, exc: BaseException, verbose: bool, warned: int = 0) -> int:
    from nrvl.commands import CommandError

    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    text = _os_error_text(exc) if isinstance(exc, OSError) else (" ".join(str(exc).split()) or type(exc).__name__)
    if not isinstance(exc, (CommandError, ValueError, TypeError, OSError)):
        text = f"{type(exc).__name__}: {text}"
    hint = "" if verbose or isinstance(exc, CommandError) else " (--verbose for the traceback)"
    if warned and not verbose:  # one line per error: the warnings only with --verbose
        shown = f"{warned} warning{'s' if warned > 1 else ''}"
        hint = f" (--verbose for the traceback and {shown})" if hint else f" (--verbose shows {shown})"
    print(f"{prog}: error: {text}{hint}", file=sys.stderr)
    return 2


def reuse_cpu_memory_unless_opted_out() -> None:
    """``nrvl.kernels.reuse_cpu_memory()`` for this process, unless ``NRVL_REUSE_CPU_MEMORY`` is 0/false/off.

    The commands allocate clip-sized CPU buffers over and over (frames, float copies, outputs);
    reusing them saves a page-faulting pass per buffer (see ``reuse_cpu_memory``).
    """
    if os.environ.get("NRVL_REUSE_CPU_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    from nrvl.kernels import reuse_cpu_memory

    reuse_cpu_memory()


def _passthrough(command: str, argv: list[str]) -> int:
    module_name = PASSTHROUGH[command][0]
    prog = f"nrvl {command}"
    verbose = "--verbose" in argv or "-v" in argv
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and module_name.startswith(e.name):
            print(f"{prog}: error: {module_name} is not part of this installation yet", file=sys.stderr)
        else:
            print(f"{prog}: error: missing dependency {e.name!r} (install nrvl[eval])", file=sys.stderr)
        if verbose:
            traceback.print_exception(e, file=sys.stderr)
        return 2
    entry = getattr(module, "main", None)
    if entry is None:
        print(f"{prog}: error: {module_name} has no main(argv)", file=sys.stderr)
        return 2
    try:
        rc = entry(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        return _fail(prog, e, verbose)
    return int(rc or 0)


def main(argv: list[str] | None = None) -> int:
    """Run the ``nrvl`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    lead = 0
    while lead < len(argv) and argv[lead] in ("-v", "--verbose"):
        lead += 1
    if lead < len(argv) and argv[lead] in PASSTHROUGH:  # "nrvl -v eval ...": the flag goes to the command
        argv = argv[lead:lead + 1] + (["--verbose"] if lead else []) + argv[lead + 1:]
    if argv and argv[0] in PASSTHROUGH:
        reuse_cpu_memory_unless_opted_out()
        return _passthrough(argv[0], argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, argument errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    prog = f"nrvl {args.command}"
    # torch.compile's CPU path logs "No CUDA runtime is found" through this logger: noise, not news.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    with warnings.catch_warnings(record=True) as caught:
        try:
            with _sigterm_as_interrupt():
                reuse_cpu_memory_unless_opted_out()
                rc = int(args.run(args) or 0)
        except KeyboardInterrupt as e:
            _show_warnings(caught)
            said = " ".join(str(e.args[0]).split()) if e.args else ""
            print(f"{prog}: {said or 'interrupted'}", file=sys.stderr)
            return 143 if isinstance(e, Terminated) else 130
        except Exception as e:
            if args.verbose:
                _show_warnings(caught)
            return _fail(prog, e, args.verbose, len({str(w.message) for w in caught}))
        _show_warnings(caught)
        return rc


if __name__ == "__main__":
    raise SystemExit(main())
