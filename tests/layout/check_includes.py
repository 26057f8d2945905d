#!/usr/bin/env python3
"""The layers' include rule, over the #include "..." lines of every C file.

Dependencies point one way (README, "Layout"):

    main -> cmd -> app -> http -> base        app -> store -> base, index
    app, cmd -> encoder                       encoder/, index/: system only

A quoted #include must name a header of the file's own folder or of a
folder its layer may use; anything else (a header of a layer above, a
sibling it may not see, or a header that exists nowhere) is reported with
its file and line. Exit status 1 when any is found.

    check_includes.py [REPO]
"""
import os
import re
import sys

# folder -> the folders whose headers it may include (its own first)
ALLOWED = {
    "server": ["server", "server/cmd"],                   # main.c
    "server/base": ["server/base"],
    "server/store": ["server/store", "server/base", "index"],
    "server/http": ["server/http", "server/base"],
    "server/app": ["server/app", "server/http", "server/store", "server/base", "encoder", "index"],
    "server/cmd": ["server/cmd", "server/app", "server/http", "server/store", "server/base",
                   "encoder", "index"],
    "tools": ["tools"],                                   # build-time tools
    "encoder": ["encoder"],
    "index": ["index"],
}

# Above server/store/, the store layer is its facade: catalog.h and the plain
# values it includes (store_types.h); never SQLite (store.h) or the files
# (datadir.h), so that another backend can stand behind catalog.h.
FACADE = {"server/store": {"catalog.h", "store_types.h"}}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def headers_by_folder(repo):
    found = {}
    for folder in ALLOWED:
        path = os.path.join(repo, folder)
        found[folder] = set(n for n in os.listdir(path)
                            if os.path.isfile(os.path.join(path, n)))
    return found


def owner(name, folders):
    return [f for f, names in folders.items() if name in names]


def check(repo):
    folders = headers_by_folder(repo)
    problems = []
    files = 0
    for folder, allowed in ALLOWED.items():
        for name in sorted(folders[folder]):
            if not name.endswith((".c", ".h", ".inc")):
                continue
            files += 1
            path = os.path.join(folder, name)
            with open(os.path.join(repo, path), encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    if "/" in inc:
                        problems.append(f"{path}:{lineno}: #include \"{inc}\": name a header "
                                        "by its file name; the build's include directories say "
                                        "where it may come from")
                        continue
                    hidden = [a for a in allowed if a != folder and a in FACADE
                              and inc in folders[a] and inc not in FACADE[a]]
                    if hidden:
                        problems.append(f"{path}:{lineno}: #include \"{inc}\" from {hidden[0]}: "
                                        f"above it, use only {', '.join(sorted(FACADE[hidden[0]]))}")
                        continue
                    if any(inc in folders[a] for a in allowed):
                        continue
                    where = owner(inc, folders)
                    if where:
                        problems.append(f"{path}:{lineno}: #include \"{inc}\" from {', '.join(where)}: "
                                        f"{folder} may use only {', '.join(allowed)}")
                    else:
                        problems.append(f"{path}:{lineno}: #include \"{inc}\": no such header in "
                                        f"{', '.join(allowed)}")
    return files, problems


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    files, problems = check(os.path.abspath(repo))
    for p in problems:
        print(p)
    print(f"{files} files checked, {len(problems)} includes against the layers")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
