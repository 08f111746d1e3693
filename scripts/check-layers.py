#!/usr/bin/env python3
"""Checks the shape of the code (scripts/check-layers.sh runs it, in CI).

1. The import graph of the api and worker crates.

Each crate's modules sit in layers, listed below from the bottom up. A module may import
(`crate::...` or `super::...`) modules of its own layer or of layers below it, never above;
and no modules may import each other in a circle, at any level of the tree (a directory
module and its own children are one family and may refer to each other; siblings may not
form a loop).

2. The size of every source file of the workspace: at most MAX_LINES lines before its first
`#[cfg(test)]` (its unit tests do not count), so that no file grows into a house of its own.

Prints every violation and exits 1 when there is one.
"""

import re
import sys
from pathlib import Path

# Bottom to top. A module takes the layer of the longest prefix listed; every module of the
# crate must have one (a new top-level module must be placed here, on purpose).
LAYERS = {
    "api": [
        ("domain", ["domain"]),
        ("store and broker", ["store", "broker"]),
        ("caches", ["services::cache", "services::keys::cache", "services::records",
                    "services::route_table", "services::stream_hub"]),
        ("services", ["services"]),
        ("http", ["http"]),
        ("composition", ["config", "state", "lib", "main"]),
    ],
    "worker": [
        ("contracts", ["error", "protocol", "death"]),
        ("pool", ["pool"]),
        ("settings", ["config"]),
        ("docker", ["artifacts", "container", "sandbox"]),
        ("jobs", ["signals", "executor", "build", "consumer"]),
        ("composition", ["lib", "main"]),
    ],
}

MAX_LINES = 600
CRATES = ["common", "api", "worker", "bench", "cli"]

USE_ITEM = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")


def module_path(src: Path, file: Path) -> list[str]:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def brace_group(text: str, start: int) -> str:
    depth, i = 0, start
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return ""


def top_names(group: str) -> list[list[str]]:
    """`a::b, c::{d, e}, f` -> [[a, b], [c], [f]] (the first path of each item)."""
    items, depth, current = [], 0, ""
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    paths = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        head = re.match(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*", item)
        if head:
            paths.append(head.group(0).split("::"))
    return paths


def imports(text: str, here: list[str]) -> list[list[str]]:
    """The module paths `text` names through `crate::`, `super::` or `self::`, absolute."""
    found = []
    text = strip_comments(text)
    for m in USE_ITEM.finditer(text):
        root, rest = m.group(1), m.group(2)
        base = {"crate": [], "super": here[:-1], "self": here}[root]
        if rest == "::{":
            paths = top_names(brace_group(text, m.end() - 1))
        else:
            paths = [rest.strip(":").split("::")]
        for path in paths:
            prefix = list(base)
            # `super::super::x`
            while path and path[0] == "super":
                prefix = prefix[:-1]
                path = path[1:]
            found.append(prefix + path)
    return found


def resolve(path: list[str], modules: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in modules:
            return tuple(path[:n])
    return None


def layer_of(module: tuple[str, ...], layers) -> int | None:
    best, best_len = None, -1
    name = "::".join(module)
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + "::")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def cycles(edges: set[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[list[tuple[str, ...]]]:
    """Circles among siblings: each edge lifted to the children of the two ends' common parent."""
    lifted: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for a, b in edges:
        common = 0
        while common < min(len(a), len(b)) and a[common] == b[common]:
            common += 1
        if common == len(a) or common == len(b):
            continue  # a module and its own ancestor or descendant
        sa, sb = a[: common + 1], b[: common + 1]
        lifted.setdefault(sa, set()).add(sb)
    # Tarjan's strongly connected components.
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in lifted.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in list(lifted):
        if v not in index:
            visit(v)
    return out


def check(root: Path, crate: str) -> list[str]:
    src = root / crate / "src"
    layers = LAYERS[crate]
    files = sorted(src.rglob("*.rs"))
    modules = {tuple(module_path(src, f)) for f in files}
    problems, edges = [], set()
    for file in files:
        here = module_path(src, file)
        mine = layer_of(tuple(here), layers)
        if mine is None:
            problems.append(f"{crate}: module {'::'.join(here)} has no layer in {Path(__file__).name}")
            continue
        for path in imports(file.read_text(), here):
            target = resolve(path, modules)
            if target is None or target == tuple(here):
                continue
            edges.add((tuple(here), target))
            theirs = layer_of(target, layers)
            if theirs is not None and theirs > mine:
                problems.append(
                    f"{crate}: {file.relative_to(root)} ({layers[mine][0]}) imports "
                    f"{'::'.join(target)} ({layers[theirs][0]}), a layer above it"
                )
    for circle in cycles(edges):
        names = " -> ".join("::".join(m) for m in circle)
        problems.append(f"{crate}: modules import each other in a circle: {names}")
    return problems


def oversized(root: Path) -> list[str]:
    problems = []
    for crate in CRATES:
        for file in sorted((root / crate / "src").rglob("*.rs")):
            lines = 0
            for line in file.read_text().splitlines():
                if line.startswith("#[cfg(test)]"):
                    break
                lines += 1
            if lines > MAX_LINES:
                problems.append(
                    f"{file.relative_to(root)}: {lines} lines before its tests, over {MAX_LINES}; "
                    "split it into modules"
                )
    return problems


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    problems = [p for crate in LAYERS for p in check(root, crate)] + oversized(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)")
        return 1
    print(
        "check-layers: api and worker import only their own layer or below, with no circle; "
        f"no source file over {MAX_LINES} lines before its tests"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
