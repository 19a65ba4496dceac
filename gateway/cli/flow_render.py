"""`callgate flow render FLOW -o OUT.svg|.png`: draw a flow with Graphviz (exit 0 drawn, 1 invalid flow,
2 usage, Graphviz missing or failing, or a file that cannot be read or written)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

EXIT_OK, EXIT_INVALID, EXIT_TROUBLE = 0, 1, 2


def add_parser(flow_sub) -> None:
    p = flow_sub.add_parser("render", help="draw a flow as an SVG or PNG picture (Graphviz)",
                            description="Draw a flow as a graph: one box per action, one labelled arrow per "
                                        "branch. Exit 0 drawn, 1 invalid flow, 2 usage or Graphviz trouble.")
    p.add_argument("file", help="flow file (Amazon Connect flow language)")
    p.add_argument("-o", "--output", required=True, help="picture to write: NAME.svg or NAME.png")
    p.add_argument("--format", choices=("svg", "png"), help="picture format (default: from the -o suffix)")
    p.add_argument("--layout", choices=("dot", "designer"), default="dot",
                   help="dot: Graphviz arranges the graph (default); designer: keep the block positions the "
                        "Connect flow designer saved in Metadata")
    p.add_argument("--force", action="store_true", help="draw an invalid flow anyway, as far as it can be read")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from gateway.flows.render import FORMATS, RenderError, read_drawable, render_file
    from gateway.flows.validate import FlowInvalid

    out = Path(args.output)
    fmt = args.format or out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        return _fail(args, f"cannot tell the picture format from {str(out)!r}: name it .svg or .png, "
                           f"or give --format", EXIT_TROUBLE)
    try:
        drawable = read_drawable(args.file, force=args.force)
    except FlowInvalid as exc:
        unreadable = len(exc.issues) == 1 and exc.issues[0].message.startswith("cannot read file")
        return _fail(args, str(exc), EXIT_TROUBLE if unreadable else EXIT_INVALID, exc.issues)
    layout = args.layout
    notes = [("error: " if issue.severity == "error" else "") + str(issue) for issue in drawable.issues]
    if layout == "designer" and not any(i in drawable.designer.positions for i in drawable.flow.actions):
        notes.append(f"warning: {args.file} has no designer positions (Metadata.ActionMetadata); "
                     f"drawn with the dot layout")
        layout = "dot"
    started = time.monotonic()
    try:
        render_file(drawable.flow, out, fmt, layout=layout, designer=drawable.designer, issues=drawable.issues)
    except RenderError as exc:
        return _fail(args, str(exc), EXIT_TROUBLE, drawable.issues)
    seconds = time.monotonic() - started
    errors = len(drawable.errors)
    if args.json:
        from gateway.cli.output import emit_json
        emit_json({"file": args.file, "output": str(out), "format": fmt, "layout": layout,
                   "actions": len(drawable.flow.actions), "valid": not errors, "seconds": round(seconds, 3),
                   "issues": [_issue(i) for i in drawable.issues]})
    else:
        for note in notes:
            print(note, file=sys.stderr)
        drawn = f"{len(drawable.flow.actions)} actions" + (f", INVALID: {errors} error(s)" if errors else "")
        print(f"{out}: {fmt.upper()} of {args.file} ({drawn}; {layout} layout, {seconds:.2f} s)")
    return EXIT_OK


def _fail(args, message: str, code: int, issues=()) -> int:
    if args.json:
        from gateway.cli.output import emit_json
        emit_json({"file": args.file, "output": args.output, "error": message, "exit": code,
                   "issues": [_issue(i) for i in issues]})
    else:
        print(f"callgate: {message}", file=sys.stderr)
        if code == EXIT_INVALID:
            print("callgate: not drawn (use --force to draw what can be read)", file=sys.stderr)
    return code


def _issue(issue) -> dict:
    return {"severity": issue.severity, "path": issue.path, "identifier": issue.identifier,
            "message": issue.message, "line": issue.line, "column": issue.column}
