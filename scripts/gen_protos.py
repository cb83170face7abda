"""Regenerate the Python gRPC stubs from protos/: `python scripts/gen_protos.py`.

The proto tree mirrors the package (protos/routecore/v1 -> src/routecore/v1), so
the generated imports are correct as generated. `--out DIR` writes elsewhere
(the freshness test compares such a copy with the committed stubs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc  # build-time tool, imported only here

    sources = sorted(PROTOS.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--pyi_out={out}",
        *[str(s) for s in sources],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "src")
    ns = parser.parse_args()
    ns.out.mkdir(parents=True, exist_ok=True)
    for src in generate(ns.out):
        print(f"generated {src.relative_to(ROOT)} -> {ns.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
