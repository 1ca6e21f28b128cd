#!/usr/bin/env python3
"""Doc audit of a crate's source: public functions without an `# Examples`
doctest, and doc lines per code line for each module.

    dev/doc-audit.py crates/flowgate/src            # ratio per module
    dev/doc-audit.py crates/flowgate/src --missing  # + each public fn lacking an example

A public function counts when it is `pub fn` / `pub async fn` / `pub const fn`
(not `pub(crate)`/`pub(super)`), or a provided method of a `pub trait`, outside
`#[cfg(test)]` modules. Its doc block must contain a ```` ``` ```` fence that is
not `text`, `ignore` or `compile_fail`.
"""
import os, re, sys

PUB_FN = re.compile(r"^\s*pub (const |async |unsafe )*fn (\w+)")
TRAIT = re.compile(r"^\s*pub trait (\w+)")
TRAIT_FN = re.compile(r"^\s*(async )?fn (\w+)")

def has_example(doc):
    fence = False
    for d in doc:
        t = d.strip()
        if t.startswith("```"):
            tag = t[3:].strip()
            if not fence:
                if tag in ("text", "ignore", "compile_fail", "no_run") or tag.startswith("text"):
                    fence = True
                    continue
                return True
            fence = False
    return False

def audit(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    missing, total = [], 0
    trait_depth = None
    doc = []
    skip_until_depth = None
    depth = 0
    for i, line in enumerate(lines):
        s = line.strip()
        if skip_until_depth is not None:
            depth += line.count("{") - line.count("}")
            if depth <= skip_until_depth:
                skip_until_depth = None
            continue
        if s.startswith("#[cfg(") and "test" in s and "not(test" not in s and i + 1 < len(lines) and re.match(r"\s*(pub(\(\w+\))? )?mod ", lines[i + 1]):
            skip_until_depth = depth
            # consume the mod line's braces on next iterations
            continue
        if s.startswith("///"):
            doc.append(s[3:])
            continue
        if s.startswith("#[doc") and "```" in s:
            # A generated doc line (`#[doc = concat!("```\n…")]` in a macro).
            doc.append(s[s.index("```"):].split("\\n")[0].strip('"'))
            depth += line.count("{") - line.count("}")
            continue
        if s.startswith("#[") or s.startswith("//"):
            depth += line.count("{") - line.count("}")
            continue
        m = PUB_FN.match(line)
        t = TRAIT.match(line)
        if t:
            trait_depth = depth
        elif m or (trait_depth is not None and depth == trait_depth + 1 and TRAIT_FN.match(line)):
            name = (m or TRAIT_FN.match(line)).group(2)
            total += 1
            if not has_example(doc):
                missing.append((i + 1, name))
        depth += line.count("{") - line.count("}")
        if trait_depth is not None and depth <= trait_depth and not t:
            trait_depth = None
        doc = []
    return total, missing

def ratio(path):
    docl = code = 0
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s.startswith("//!") or s.startswith("///"):
            docl += 1
        elif s and not s.startswith("//"):
            code += 1
    return docl, code

def main():
    root = sys.argv[1]
    show = "--missing" in sys.argv
    mods = {}
    allmissing = []
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            mod = rel.split(os.sep)[0].removesuffix(".rs")
            total, missing = audit(p)
            d, c = ratio(p)
            m = mods.setdefault(mod, [0, 0, 0, 0])
            m[0] += d; m[1] += c; m[2] += total; m[3] += len(missing)
            allmissing += [(rel, ln, name) for ln, name in missing]
    print(f"{'module':<14} {'doc':>6} {'code':>6} {'ratio':>6} {'pub fns':>8} {'no example':>10}")
    T = [0, 0, 0, 0]
    for mod in sorted(mods):
        d, c, t, n = mods[mod]
        T = [a + b for a, b in zip(T, mods[mod])]
        print(f"{mod:<14} {d:>6} {c:>6} {d / max(c, 1):>6.2f} {t:>8} {n:>10}")
    d, c, t, n = T
    print(f"{'total':<14} {d:>6} {c:>6} {d / max(c, 1):>6.2f} {t:>8} {n:>10}")
    if show:
        for rel, ln, name in allmissing:
            print(f"{rel}:{ln}: {name}")

main()
