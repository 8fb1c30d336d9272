#!/usr/bin/env python3
"""The shape check: file and function sizes, the gRPC share, module cycles.

Usage: scripts/shape.py [--enforce-grpc-share] [CRATE_SRC_DIR ...]

With no directories it checks server/src, oci/src, client-cli/src and
clients/rust/src. It fails (exit 1) when, in code outside #[cfg(test)] items
and tests/ directories:

- a Rust source file is over MAX_FILE_LINES lines (lines of #[cfg(test)]
  items do not count);
- a function is over MAX_FN_LINES lines, from the line of its `fn` to the
  line of its closing brace, unless FN_ALLOWLIST names it with a reason;
- two modules of one crate import each other, directly or through a cycle
  (see "Module cycles" below);
- with --enforce-grpc-share or SHAPE_ENFORCE_GRPC_SHARE=1 only: the files
  of server/src and oci/src whose code names `tonic` or `prost` (any
  `tonic*`/`prost*` identifier, comments and strings aside) hold more than
  MAX_GRPC_SHARE of those two directories' lines (whole files, tests
  included). Without the flag the share is printed, not enforced.

Module cycles. Each crate's module tree is read from its root (lib.rs,
main.rs) by following `mod x;` declarations that are not under
#[cfg(test)]; inline `mod x { … }` blocks count as part of their file's
module. A module refers to another through `crate::a::b` paths (in `use`
trees and anywhere in code), `super::`/`self::` paths, and, in a module that
has `use super::*;`, bare `sibling::` paths; each is resolved to
the deepest module it names (`crate::Error`, a re-export at the root, is the
root). A parent module and its own descendants may refer to each other
freely: such references are no edges. A reference between two other
modules counts as an edge between their ancestors that are siblings (the
children of their lowest common ancestor that contain them): so
`registry::upload -> target` is the edge `registry -> target`. Any cycle
among siblings is a failure, printed with the references that make it.
"""

import os
import re
import sys

MAX_FILE_LINES = 600
MAX_FN_LINES = 80
MAX_GRPC_SHARE = 0.10
DEFAULT_DIRS = ["server/src", "oci/src", "client-cli/src", "clients/rust/src"]
GRPC_SHARE_DIRS = ["server/src", "oci/src"]

# Functions allowed over MAX_FN_LINES: {"path::fn_name": "why"}. Keep it
# empty; an entry needs a reason a reviewer would accept.
FN_ALLOWLIST = {}


def blank_comments_and_strings(src):
    """The source with comments and the insides of string and char literals
    replaced by spaces, newlines kept, so braces and words can be counted."""
    out = []
    i, n = 0, len(src)

    def keep_newlines(s):
        return "".join(c if c == "\n" else " " for c in s)

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(keep_newlines(src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(keep_newlines(src[i:j]))
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (
            i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")
        ):
            close = '"' + m.group(1)
            j = src.find(close, m.end())
            j = n if j < 0 else j + len(close)
            out.append('""' + keep_newlines(src[i + 2 : j]))
            i = j
        elif c == '"' or (c == "b" and src.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append('""' + keep_newlines(src[i + 2 : j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            if i + 1 < n and src[i + 1] == "\\":
                j = src.find("'", i + 3)
                j = n if j < 0 else j + 1
                out.append("' '" + keep_newlines(src[i + 3 : j]))
                i = j
            elif i + 2 < n and src[i + 2] == "'":
                out.append("' '")
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    """The index of the brace closing the one at `open_at`."""
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def item_end(code, start):
    """Where the item starting at `start` ends: its closing brace, or its
    `;` when it has no body (brackets and parentheses skipped)."""
    depth = 0
    for j in range(start, len(code)):
        ch = code[j]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch == ";":
            return j
        elif depth == 0 and ch == "{":
            return matching_brace(code, j)
    return len(code) - 1


CFG_TEST = re.compile(r"#\[cfg\((?:all\()?test\b[^\]]*\]")


def strip_test_items(code):
    """`code` with every #[cfg(test)] item blanked, the names of the modules
    declared (`mod x;`) under #[cfg(test)], and how many lines those items
    spanned."""
    test_mods, test_lines = set(), 0
    while True:
        m = CFG_TEST.search(code)
        if not m:
            return code, test_mods, test_lines
        start = m.start()
        end = item_end(code, m.end())
        item = code[m.end() : end + 1]
        d = re.search(r"\bmod\s+(\w+)\s*;", item)
        if d and "{" not in item:
            test_mods.add(d.group(1))
        test_lines += code.count("\n", start, end + 1) + 1
        blank = "".join(c if c == "\n" else " " for c in code[start : end + 1])
        code = code[:start] + blank + code[end + 1 :]


def line_of(code, index):
    return code.count("\n", 0, index) + 1


FN = re.compile(r"\bfn\s+(\w+)")


def functions(code):
    """(name, first line, line count) of each function with a body."""
    out = []
    for m in FN.finditer(code):
        end = item_end(code, m.end())
        if code[end] != "}":
            continue  # a declaration without a body
        first, last = line_of(code, m.start()), line_of(code, end)
        out.append((m.group(1), first, last - first + 1))
    return out


class Module:
    def __init__(self, crate, path, file, code, lines):
        self.crate, self.path, self.file, self.code = crate, path, file, code
        # Lines of the file outside #[cfg(test)] items.
        self.lines = lines


def child_file(module_file, is_dir_owner, name):
    """The file of child module `name` of the module in `module_file`."""
    base = os.path.dirname(module_file)
    if not is_dir_owner:
        stem = os.path.splitext(os.path.basename(module_file))[0]
        base = os.path.join(base, stem)
    for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
        if os.path.exists(cand):
            return cand
    return None


MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.M)


def crate_modules(src_dir):
    """Each crate rooted in `src_dir` (lib.rs, main.rs, bin/*.rs) as a list of
    its modules, with test items blanked from their code."""
    roots = [os.path.join(src_dir, r) for r in ("lib.rs", "main.rs")]
    bindir = os.path.join(src_dir, "bin")
    if os.path.isdir(bindir):
        roots += [os.path.join(bindir, f) for f in sorted(os.listdir(bindir)) if f.endswith(".rs")]
    crates = []
    for root in roots:
        if not os.path.exists(root):
            continue
        crate = root
        modules, todo = [], [((), root, True)]
        while todo:
            path, file, owner = todo.pop()
            raw = open(file, encoding="utf-8").read()
            code, test_mods, test_lines = strip_test_items(blank_comments_and_strings(raw))
            lines = len(raw.rstrip("\n").split("\n")) - test_lines
            modules.append(Module(crate, path, file, code, lines))
            for d in MOD_DECL.finditer(code):
                name = d.group(1)
                if name in test_mods:
                    continue
                f = child_file(file, owner, name)
                if f and "/tests/" not in f:
                    todo.append((path + (name,), f, os.path.basename(f) == "mod.rs"))
        crates.append(modules)
    return crates


def use_paths(tree):
    """The paths in a `use` tree such as `crate::{a::b, c::{d, e}}`."""
    tree = re.sub(r"\s+", "", tree)

    def parse(s, prefix):
        out, depth, start = [], 0, 0
        parts = []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            if "{" in part:
                head, rest = part.split("{", 1)
                out += parse(rest[: rest.rfind("}")], prefix + head)
            else:
                out.append(prefix + re.sub(r"\bas\b.*", "", part))
        return out

    return parse(tree, "")


USE = re.compile(r"\buse\s+([^;]+);")
PATH = re.compile(r"\b(?:crate|super|self)(?:::\w+)+")


def references(module):
    """(path segments relative to nothing, line) for each crate-relative
    reference in `module`, resolved from `crate`/`super`/`self`."""
    code = module.code
    found = []
    for m in USE.finditer(code):
        for p in use_paths(m.group(1)):
            found.append((p, line_of(code, m.start())))
    for m in PATH.finditer(code):
        found.append((m.group(0), line_of(code, m.start())))
    # After `use super::*;` a sibling module is in scope by its bare name.
    if module.path and re.search(r"\buse\s+super::\*\s*;", code):
        parent = module.path[:-1]
        for m in re.finditer(r"(?<![\w:])(\w+)::", code):
            if parent + (m.group(1),) in module.siblings:
                found.append(("super::" + m.group(1), line_of(code, m.start())))
    out = []
    for p, line in found:
        segs = [s for s in p.split("::") if s]
        if not segs or segs[0] not in ("crate", "super", "self"):
            continue
        if segs[0] == "crate":
            base, segs = [], segs[1:]
        else:
            base = list(module.path)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
        out.append((tuple(base + segs), line))
    return out


def deepest_module(known, segs):
    best = ()
    for k in range(1, len(segs) + 1):
        if segs[:k] in known:
            best = segs[:k]
    return best


def cycles(modules):
    """The cycles among sibling modules of one crate: a list of (members,
    [evidence lines])."""
    known = {m.path for m in modules}
    for m in modules:
        m.siblings = known
    edges = {}  # (a, b) sibling paths -> evidence
    for m in modules:
        for segs, line in references(m):
            target = deepest_module(known, segs)
            a, b = m.path, target
            k = 0
            while k < min(len(a), len(b)) and a[k] == b[k]:
                k += 1
            if k == len(a) or k == len(b):
                continue  # the same module, an ancestor or a descendant
            sa, sb = a[: k + 1], b[: k + 1]
            ev = f"{m.file}:{line}: {'::'.join(a) or 'crate'} -> {'::'.join(b)}"
            lines = edges.setdefault((sa, sb), [])
            if ev not in lines:
                lines.append(ev)
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    # Tarjan's strongly connected components.
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for comp in comps:
        members = set(comp)
        ev = []
        for (a, b), lines in sorted(edges.items()):
            if a in members and b in members:
                ev += lines[:3] + ([f"  … and {len(lines) - 3} more"] if len(lines) > 3 else [])
        out.append((sorted("::".join(c) for c in comp), ev))
    return out


def grpc_share(dirs):
    total = grpc = 0
    files = []
    for d in dirs:
        for dp, _, fns in os.walk(d):
            if "tests" in dp.split(os.sep):
                continue
            for f in fns:
                if not f.endswith(".rs"):
                    continue
                p = os.path.join(dp, f)
                raw = open(p, encoding="utf-8").read()
                n = raw.count("\n")
                total += n
                if re.search(r"\b(?:tonic|prost)\w*\b", blank_comments_and_strings(raw)):
                    grpc += n
                    files.append((n, p))
    return grpc, total, sorted(files, reverse=True)


def main(argv):
    enforce_share = os.environ.get("SHAPE_ENFORCE_GRPC_SHARE") == "1"
    dirs = []
    for a in argv:
        if a == "--enforce-grpc-share":
            enforce_share = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            dirs.append(a.rstrip("/"))
    explicit = bool(dirs)
    dirs = dirs or DEFAULT_DIRS
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

    failures = []
    largest, longest = (0, "-"), (0, "-")
    found_cycles = []
    for d in dirs:
        for modules in crate_modules(d):
            for m in modules:
                lines = m.lines
                largest = max(largest, (lines, m.file))
                if lines > MAX_FILE_LINES:
                    failures.append(f"{m.file}: {lines} lines (max {MAX_FILE_LINES})")
                for name, first, count in functions(m.code):
                    where = f"{m.file}:{first} {name}"
                    longest = max(longest, (count, where))
                    if count > MAX_FN_LINES and f"{m.file}::{name}" not in FN_ALLOWLIST:
                        failures.append(f"{where}: {count} lines (max {MAX_FN_LINES})")
            for members, ev in cycles(modules):
                found_cycles.append(members)
                failures.append(
                    f"module cycle in {modules[0].file}'s crate: {' <-> '.join(members)}\n    "
                    + "\n    ".join(ev)
                )

    share_dirs = [d for d in GRPC_SHARE_DIRS if not explicit or d in dirs]
    share_line = "gRPC share: not measured (neither server/src nor oci/src checked)"
    if share_dirs:
        grpc, total, files = grpc_share(share_dirs)
        share = grpc / total if total else 0.0
        share_line = (
            f"gRPC share: {share:.1%} ({grpc} of {total} lines of {' + '.join(share_dirs)} "
            f"in {len(files)} files naming tonic/prost; max {MAX_GRPC_SHARE:.0%}, "
            + ("enforced)" if enforce_share else "report only: SHAPE_ENFORCE_GRPC_SHARE=1 enforces)")
        )
        if share > MAX_GRPC_SHARE:
            detail = ", ".join(f"{p} ({n})" for n, p in files)
            msg = f"gRPC share {share:.1%} over {MAX_GRPC_SHARE:.0%}: {detail}"
            if enforce_share:
                failures.append(msg)
            else:
                print(f"shape: note: {msg}")

    for f in failures:
        print(f"shape: {f}")
    print(f"shape: largest file: {largest[1]} ({largest[0]} lines)")
    print(f"shape: longest function: {longest[1]} ({longest[0]} lines)")
    print(f"shape: {share_line}")
    print(f"shape: module cycles: {len(found_cycles)}" + "".join(f"; {' <-> '.join(c)}" for c in found_cycles))
    if failures:
        print(f"shape: FAILED, {len(failures)} problem(s)")
        return 1
    print("shape: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
