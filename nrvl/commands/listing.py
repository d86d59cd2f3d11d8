"""``nrvl list``: the registered noises with family, frame rule and one-line description.

Grouped by family in ``FAMILIES`` order (as the README's table), the reference's order within
a family; one noise per line, the name first, so ``--names`` and ``--family`` give lists a
script can read.
"""
from __future__ import annotations

import argparse

HELP = "list the noises by family (name, family, frames touched, severity table, description)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("list", help=HELP, description=HELP)
    p.add_argument("--family", help="only this family (quality, blur, occlusion, temporal, lighting, "
                                    "weather, digital)")
    p.add_argument("--names", action="store_true", help="print the names only, one per line (same order)")
    p.set_defaults(run=run)
    return p


def rows(family: str | None = None) -> list[tuple[str, str, str, str, str]]:
    """``(name, family, frames, severities, description)`` per registered noise, grouped by family."""
    import nrvl.kernels as K

    from . import CommandError

    if family is not None and family not in K.FAMILIES:
        raise CommandError(f"--family must be one of {', '.join(K.FAMILIES)}, got {family!r}")
    out = []
    names = [n for fam in ([family] if family else K.FAMILIES) for n in K.list_noises(fam)]
    if family is None:  # a noise whose family FAMILIES does not list
        names += [n for n in K.list_noises() if n not in names]
    for name in names:
        spec = K.NOISES[name]
        frames = {"selected": "int(T*r)", "all": "all", "custom": "custom"}[spec.frame_mode]
        out.append((name, spec.family, frames, "1-5" if spec.severities else "-", spec.description))
    return out


def format_table(table: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *table]:
        cells = [str(c).ljust(w) for c, w in zip(r, widths)] + [str(r[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args) -> int:
    table = rows(args.family)
    if args.names:
        print("\n".join(r[0] for r in table))
        return 0
    print(format_table(table, ("noise", "family", "frames", "severity", "description")))
    print(f"\n{len(table)} noises")
    return 0
