#!/usr/bin/env python3
"""The BOSH conformance table from the suite's JUnit XML files, one per target.

    conformance_table.py [--out docs/conformance.md] [--command CMD] NAME=FILE.xml ...

Rows: the checklist items (test/conformance/, test_cSSssX_* = XEP-0124 §SS.ss item X,
test_xSSssX_* = XEP-0206); columns: the targets in the order given; cells: pass, FAIL (failed
or error), n/a (skipped: the item cannot be set up on that target), - (not in that run).
Printed as a Markdown table; --out also writes it, with the date and the command, to a file.
"""
import argparse
import datetime
import re
import sys
import xml.etree.ElementTree as ET

NAME_RE = re.compile(r"^test_([cx])(\d\d)(\d\d)([a-z])_(.+)$")


def results(path):
    out = {}
    root = ET.parse(path).getroot()
    for tc in root.iter("testcase"):
        name = tc.get("name", "")
        if not NAME_RE.match(name):
            continue
        if tc.find("failure") is not None or tc.find("error") is not None:
            out[name] = "FAIL"
        elif tc.find("skipped") is not None:
            out[name] = "n/a"
        else:
            out[name] = "pass"
    return out


def label(name):
    m = NAME_RE.match(name)
    xep = "XEP-0124" if m.group(1) == "c" else "XEP-0206"
    sec, sub = int(m.group(2)), int(m.group(3))
    section = "§%d" % sec if sub == 0 else "§%d.%d" % (sec, sub)
    return xep, "%s%s" % (section, m.group(4)), m.group(5).replace("_", " ")


def sort_key(name):
    m = NAME_RE.match(name)
    return (m.group(1), m.group(2), m.group(3), m.group(4))


def table(columns):
    names = sorted({n for _, res in columns for n in res}, key=sort_key)
    lines = ["| XEP | item | requirement | %s |" % " | ".join(c for c, _ in columns),
             "|---|---|---|" + "---|" * len(columns)]
    for n in names:
        xep, item, what = label(n)
        lines.append("| %s | %s | %s | %s |"
                     % (xep, item, what, " | ".join(res.get(n, "-") for _, res in columns)))
    totals = []
    for _, res in columns:
        passed = sum(1 for n in names if res.get(n) == "pass")
        totals.append("%d/%d" % (passed, len(names)))
    lines.append("| | | **items passed** | %s |" % " | ".join(totals))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--command", default="make conformance")
    ap.add_argument("--note", default="")
    ap.add_argument("--appendix", help="a Markdown file appended after the table")
    ap.add_argument("runs", nargs="+", help="COLUMN=junit.xml")
    a = ap.parse_args()
    columns = []
    for run in a.runs:
        col, path = run.split("=", 1)
        try:
            columns.append((col, results(path)))
        except (OSError, ET.ParseError) as e:
            sys.stderr.write("%s: %s (column left empty)\n" % (path, e))
            columns.append((col, {}))
    t = table(columns)
    print(t)
    if a.out:
        with open(a.out, "w") as f:
            f.write("# BOSH conformance: mod_xmpp_bridge, Prosody, ejabberd\n\n")
            f.write("Generated %s by `%s` (scripts/conformance.sh, test/conformance/).\n\n"
                    % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), a.command))
            f.write("One row per item of the XEP-0124 v1.11.2 / XEP-0206 v1.4 checklist "
                    "(shared/references/bosh-anchors.md §5); each item is the test "
                    "`test_<c|x><section><item>_<requirement>` in test/conformance/, whose "
                    "docstring paraphrases the requirement. Optional features (acks, pause, "
                    "keys, multi-stream, compression, legacy HTTP codes) are tested too: a "
                    "target without them fails those rows. pass / FAIL / n/a (the item "
                    "cannot be set up on that target, e.g. see-other-uri needs a configurable "
                    "moved location) / - (not run).\n\n")
            if a.note:
                f.write(a.note + "\n\n")
            f.write(t + "\n")
            if a.appendix:
                with open(a.appendix) as ap:
                    f.write("\n" + ap.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
