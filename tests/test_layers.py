"""The package's layers import one way: each uses only the layers below it.

server > calling, learned > routing > state, observe > _fast; config, domain,
errors and logs are the shared base every layer may use (config > logs > domain
> errors among themselves); cli sits on top.
Lazy imports inside functions count too: a circle through a function body is
still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "routecore"

RANK = {"server": 5, "calling": 4, "learned": 4, "routing": 3, "state": 2, "observe": 2,
        "_fast": 1, "config": 0.4, "logs": 0.3, "domain": 0.2, "errors": 0.1, "v1": 0}


def _group(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "routecore" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: list[str] = []
    pkg = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names if mod == "routecore"]
    return out


def test_imports_run_one_way() -> None:
    bad: list[str] = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        src = _group(module)
        if src in (None, "cli", "__main__") or src not in RANK:
            continue
        for target in _imports(path, module):
            dst = _group(target)
            if dst is None or dst == src or dst not in RANK:
                continue
            if RANK[dst] >= RANK[src]:
                bad.append(f"{module} imports {target} ({src} may not use {dst})")
    assert not bad, "\n".join(bad)


def test_every_layer_is_ranked() -> None:
    top = {p.stem for p in PKG.iterdir() if (p.is_dir() and (p / "__init__.py").exists())
           or (p.suffix == ".py" and p.stem != "__init__")}
    assert top - set(RANK) - {"cli", "__main__"} == set(), "rank the new layer in this test"
