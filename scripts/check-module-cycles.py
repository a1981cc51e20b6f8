#!/usr/bin/env python3
"""Fail when modules inside one crate import each other in a circle.

For every crate under crates/ and the root package, each file under src/ is a module (a directory
module, `foo/mod.rs` or `foo.rs` with `foo/`, counts with its children as one module `foo`). An edge
a -> b is drawn for `use crate::b`, a `crate::b::` path, or a `super::` that reaches b, in non-test code
(`#[cfg(test)]` items and tests/ directories are ignored). Any strongly connected component of two or
more modules is reported; exit 1 if there is one.

Usage: check-module-cycles.py [REPO_ROOT]
"""
import os
import re
import sys

CRATE_PATH = re.compile(r"\bcrate\s*::\s*([A-Za-z_][A-Za-z0-9_]*)")
SUPER_PATH = re.compile(r"\b((?:super\s*::\s*)+)([A-Za-z_][A-Za-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate\s*::\s*\{")
ITEM_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)")


def strip_comments_and_strings(text):
    """Blank out comments, string and char literals (keeping newlines) so paths in them don't count."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 260]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += m.end()
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_cfg_test(text):
    """Remove every item annotated `#[cfg(test)]` (a `mod tests { .. }` block, a `use`, a fn)."""
    while True:
        m = re.search(r"#\[\s*cfg\s*\(\s*test\s*\)\s*\]", text)
        if not m:
            return text
        j = m.end()
        # Skip further attributes on the same item.
        while True:
            a = re.match(r"\s*#\[[^\]]*\]", text[j:])
            if not a:
                break
            j += a.end()
        depth, k = 0, j
        while k < len(text):
            ch = text[k]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    k += 1
                    break
            elif ch == ";" and depth == 0:
                k += 1
                break
            k += 1
        text = text[:m.start()] + "\n" * text.count("\n", m.start(), k) + text[k:]


def module_of(src_dir, path):
    """The top-level module a file belongs to (None for the crate root files)."""
    rel = os.path.relpath(path, src_dir).replace(os.sep, "/")
    parts = rel.split("/")
    if len(parts) == 1:
        name = parts[0][:-3]
        return None if name in ("lib", "main") else name
    return parts[0]


def module_path_of(src_dir, path):
    """The full module path of a file, e.g. ['cmd', 'scan'] for src/cmd/scan.rs."""
    rel = os.path.relpath(path, src_dir).replace(os.sep, "/")[:-3]
    parts = rel.split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        return []
    return parts


def used_names(text):
    """Top-level names reached through `crate::`, including `use crate::{a, b::c}` groups."""
    names = set(CRATE_PATH.findall(text))
    for m in USE_GROUP.finditer(text):
        depth, k = 1, m.end()
        start = k
        while k < len(text) and depth:
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
            k += 1
        group = text[start:k - 1]
        # Only the first level of the group names top-level modules.
        level, item = 0, ""
        for ch in group + ",":
            if ch == "{":
                level += 1
            elif ch == "}":
                level -= 1
            if ch == "," and level == 0:
                im = ITEM_NAME.match(item)
                if im:
                    names.add(im.group(1))
                item = ""
            else:
                item += ch
    return names


def crate_graph(src_dir):
    """Edges between the top-level modules of one crate's src/."""
    modules = set()
    files = []
    for root, dirs, fnames in os.walk(src_dir):
        dirs[:] = [d for d in dirs if d not in ("tests",)]
        for f in fnames:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                files.append(path)
                mod = module_of(src_dir, path)
                if mod:
                    modules.add(mod)
    edges = {m: set() for m in modules}
    for path in sorted(files):
        source = module_of(src_dir, path)
        if source is None:
            continue
        with open(path, encoding="utf-8") as fh:
            text = strip_cfg_test(strip_comments_and_strings(fh.read()))
        targets = used_names(text)
        # `super::x` climbs from the file's own module path: `super::x` in a top-level file names a
        # sibling; `super::super::x` in `b/inner.rs` names the top-level `x` too.
        own_path = module_path_of(src_dir, path)
        for supers, name in SUPER_PATH.findall(text):
            depth = supers.count("super")
            if depth == len(own_path):
                targets.add(name)
        for target in targets:
            if target in modules and target != source:
                edges[source].add(target)
    return edges


def cycles(edges):
    """Strongly connected components with two or more modules (Tarjan, iterative)."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
    return sorted(result)


def crate_src_dirs(root):
    dirs = []
    if os.path.isdir(os.path.join(root, "src")):
        dirs.append((".", os.path.join(root, "src")))
    crates = os.path.join(root, "crates")
    if os.path.isdir(crates):
        for name in sorted(os.listdir(crates)):
            src = os.path.join(crates, name, "src")
            if os.path.isdir(src):
                dirs.append((os.path.join("crates", name), src))
    return dirs


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    found = False
    for name, src in crate_src_dirs(root):
        edges = crate_graph(src)
        for component in cycles(edges):
            found = True
            inner = {m: sorted(t for t in edges[m] if t in component) for m in component}
            detail = "; ".join(f"{m} -> {', '.join(ts)}" for m, ts in inner.items())
            print(f"{name}: module cycle: {' <-> '.join(component)} ({detail})")
    if found:
        print("module cycles found: move what both sides need into a leaf module", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
