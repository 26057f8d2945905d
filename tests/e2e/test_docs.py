"""What the documentation promises about the command line: every flag of
`clipd serve` is in the README's table with its variable, and every
CLIPD_* variable means one thing for every command that reads it."""
import os
import re
import subprocess

from helpers import CLIPD

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
OPTION = re.compile(r"^\s+(--[a-z0-9-]+)(?: (\S+))?\s+(.*?)\s*\[(CLIPD_[A-Z0-9_]+)\]\s*$")

# Variables that more than one command reads, and the words each command's
# description of it must hold: one meaning, whoever reads it.
MEANINGS = {
    "CLIPD_MODEL": "model",
    "CLIPD_DATA": "data directory",
    "CLIPD_THREADS": "encoder threads",
    "CLIPD_BATCH": "images",
    "CLIPD_IMAGE": "image",
    "CLIPD_INDEX": "family",
    "CLIPD_NPROBE": "IVF lists",
    "CLIPD_IVF_THRESHOLD": "vectors",
    "CLIPD_EXACT_DECODE": "decode",
    "CLIPD_PRECISION": "bf16",
    "CLIPD_OUT": "where to write",
    "CLIPD_API_KEY_FILE": "API keys, one per line",
    "CLIPD_CATALOG": "libpq URI",
}


def help_text(*args):
    r = subprocess.run([CLIPD, *args], capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def options(command):
    out = {}
    for line in help_text(command, "--help").splitlines():
        m = OPTION.match(line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return out


def commands():
    text = help_text("help")
    block = text.split("commands:", 1)[1]
    return [line.split()[0] for line in block.splitlines() if line.startswith("  ") and line.split()]


def test_every_serve_flag_is_in_the_readme_table():
    flags = options("serve")
    assert len(flags) > 30
    readme = open(README, encoding="utf-8").read()
    table = readme.split("### Configuration", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for m in re.finditer(r"^\| `(--[a-z0-9-]+)(?: [^`]*)?` \| `(CLIPD_[A-Z0-9_]+)` \|", table, re.M):
        rows[m.group(1)] = m.group(2)
    missing = sorted(set(flags) - set(rows))
    extra = sorted(set(rows) - set(flags))
    assert not missing, "serve flags missing from the README's table: %s" % missing
    assert not extra, "README rows for flags serve does not have: %s" % extra
    for flag, (_arg, _desc, env) in flags.items():
        assert rows[flag] == env, "%s: README says %s, serve reads %s" % (flag, rows[flag], env)


def test_every_clipd_variable_means_one_thing():
    readers = {}
    for cmd in commands():
        for flag, (_arg, desc, env) in options(cmd).items():
            readers.setdefault(env, []).append((cmd, flag, desc))
    assert "serve" in commands() and "reembed" in commands()
    for env, uses in readers.items():
        if len(uses) < 2:
            continue
        assert env in MEANINGS, "%s is read by %s: add its one meaning to MEANINGS" % (
            env, ", ".join(c for c, _, _ in uses))
        flags = {f for _, f, _ in uses}
        assert len(flags) == 1, "%s is set by different flags: %s" % (env, sorted(flags))
        for cmd, flag, desc in uses:
            assert MEANINGS[env].lower() in desc.lower(), \
                "clipd %s %s [%s] says %r, not %r" % (cmd, flag, env, desc, MEANINGS[env])
