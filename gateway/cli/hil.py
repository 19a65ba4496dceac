"""`callgate hil run|list`: the HIL scenarios (hil/scenarios/) against emulated modems or two real ones.

The scenario runner lives in hil/, outside the gateway package (nothing in gateway/ imports hil/), so this
command hands its arguments to `python -m hil.runner` in a child process and returns its exit status:
0 passed, 1 a scenario failed, 2 a bad scenario file or argument. docs/hil.md explains the scenarios.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("hil", add_help=False, help="run HIL scenarios against emulated or real modems (docs/hil.md)",
                       description="callgate hil run SCENARIO --profile NAME | --port AT ... ; callgate hil list")
    p.add_argument("-h", "--help", action="store_true", dest="hil_help", help="the runner's own help")
    p.add_argument("hil_args", nargs=argparse.REMAINDER, help="run ... | list ...")


def run(args) -> int:
    env = dict(os.environ)
    # a source checkout: hil/ sits beside the gateway package
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    if importlib.util.find_spec("hil") is None and not (Path(root) / "hil" / "runner.py").exists():
        print("callgate hil: the HIL runner (hil/) is not installed with this gateway", file=sys.stderr)
        return 2
    argv = list(args.hil_args) if args.hil_args and not args.hil_help else ["--help"]
    return subprocess.call([sys.executable, "-m", "hil.runner", *argv], env=env)
