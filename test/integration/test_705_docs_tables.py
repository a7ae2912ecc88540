"""docs/hardening.md's bad-input and fault tables match the tests one to one: every test of
test_700_bad_input.py / test_710_faults.py has exactly one row, every row names a test that
exists (rows `file.py::test_x` point into other files), and every log tag a row names is one
its test checks."""
import ast
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "hardening.md")
TABLES = {"## 5. Bad input": "test_700_bad_input.py", "## 6. Faults": "test_710_faults.py"}
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _section(text, heading):
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end >= 0 else len(text)]


def _rows(section):
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in _CELL_SPLIT.split(line.strip())[1:-1]]
        assert len(cells) == 4, "a row needs 4 cells (test, input, answer, tag): %r" % line
        rows.append(cells)
    return rows


def _tests(filename):
    """{name: source} of the test functions in a test file."""
    path = os.path.join(HERE, filename)
    with open(path) as f:
        src = f.read()
    out = {}
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            out[node.name] = ast.get_source_segment(src, node)
    return out


def test_7050_tables_match_the_tests_one_to_one():
    with open(DOC) as f:
        text = f.read()
    for heading, own_file in TABLES.items():
        rows = _rows(_section(text, heading))
        assert len(rows) > 10, heading
        own = _tests(own_file)
        named = []
        for test_cell, _input, answer, tag_cell in rows:
            ref = test_cell.strip("`")
            filename, name = ref.split("::") if "::" in ref else (own_file, ref)
            tests = own if filename == own_file else _tests(filename)
            assert name in tests, "%s: row for %s, no such test in %s" % (heading, name, filename)
            assert answer, "%s: row %s has no expected answer" % (heading, name)
            for tag in re.findall(r"XB\d{5}", tag_cell):
                assert tag in tests[name], "%s: %s does not check %s" % (heading, name, tag)
            if filename == own_file:
                named.append(name)
        dup = sorted({n for n in named if named.count(n) > 1})
        assert not dup, "%s: several rows for %s" % (heading, dup)
        missing = sorted(set(own) - set(named))
        assert not missing, "%s: tests of %s without a row: %s" % (heading, own_file, missing)
