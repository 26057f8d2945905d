#!/usr/bin/env python3
"""No cycle between files: from the object files of a build, which file
calls (or reads) a symbol another file defines; a cycle in that graph
(a.c uses b.c and b.c uses a.c, directly or around a longer loop) is
reported with its files. Exit status 1 when there is one.

    check_cycles.py BUILD_DIR [FOLDER...]     FOLDER: server encoder index (default)
"""
import json
import os
import subprocess
import sys


def objects(build, folder):
    """The object files the build makes today (compile_commands.json), so
    that leftovers of renamed files do not count."""
    with open(os.path.join(build, "compile_commands.json")) as f:
        for entry in json.load(f):
            out = entry.get("output", "")
            if out.startswith(folder + "/") and out.endswith(".c.o") and ".a.p/" in out:
                path = os.path.join(build, out)
                if os.path.exists(path):
                    yield path


def source_name(obj):
    # meson names an object after its path below the target's folder:
    # "app_srv_images.c.o" in server/libclipd_app.a.p, or "srv_images.c.o"
    base = os.path.basename(obj)[:-2]
    lib = os.path.basename(os.path.dirname(obj))[:-4]
    return lib + ":" + base


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", obj], capture_output=True, text=True,
                         check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    out = subprocess.run(["nm", "-u", obj], capture_output=True, text=True, check=True).stdout
    used = {line.split()[-1] for line in out.splitlines() if line.strip()}
    return defined, used


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    folders = sys.argv[2:] or ["server", "encoder", "index"]
    defined_by, uses = {}, {}
    for folder in folders:
        for obj in objects(build, folder):
            name = source_name(obj)
            d, u = symbols(obj)
            uses[name] = u
            for s in d:
                defined_by[s] = name
    if not uses:
        print(f"no object files under {build}: build first")
        return 2
    graph = {f: {defined_by[s] for s in u if s in defined_by and defined_by[s] != f}
             for f, u in uses.items()}
    found = cycles(graph)
    for comp in found:
        print("cycle between " + ", ".join(comp))
    print(f"{len(uses)} files, {len(found)} cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
