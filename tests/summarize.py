#!/usr/bin/env python3
"""Count test cases across meson test logs (testlog.json, one JSON object a line).

Each C unit test and the pytest run print their own "N passed, N failed"
summary; a test program that crashed or timed out before printing one counts
as one failure. Prints one line per test program and, last,
"N passed, N failed". Exits 1 if anything failed or nothing ran.
"""
import json
import re
import sys

COUNT = re.compile(r"(\d+) (passed|failed|error|errors)\b")


def counts(stdout):
    passed = failed = 0
    found = False
    for line in stdout.splitlines()[-40:]:
        hits = COUNT.findall(line)
        if not hits:
            continue
        found = True
        passed = failed = 0
        for n, word in hits:
            if word == "passed":
                passed = int(n)
            else:
                failed += int(n)
    return found, passed, failed


def main(paths):
    total_passed = total_failed = 0
    for path in paths:
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except OSError as e:
            print(f"missing test log {path}: {e}")
            total_failed += 1
            continue
        build = path.split("/")[0]
        for line in lines:
            if not line.strip():
                continue
            t = json.loads(line)
            found, passed, failed = counts(t.get("stdout") or "")
            ok = t.get("result") in ("OK", "EXPECTEDFAIL")
            skipped = t.get("result") == "SKIP"
            if skipped:
                print(f"{build} {t['name']}: skipped")
                continue
            if not ok and failed == 0:
                failed = 1  # crashed, timed out, or failed without a summary
            if ok and not found:
                passed = 1
            total_passed += passed
            total_failed += failed
            print(f"{build} {t['name']}: {passed} passed, {failed} failed ({t.get('result')})")
    print(f"{total_passed} passed, {total_failed} failed")
    return 1 if total_failed or not total_passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
