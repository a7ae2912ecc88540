"""conf-examples/*.conf as the suite runs them: placeholders @NAME@ filled in."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES_DIR = os.path.join(REPO, "conf-examples")
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


def example_names():
    return sorted(n for n in os.listdir(EXAMPLES_DIR) if n.endswith(".conf"))


def render_example(name, values):
    """The example's text with every @NAME@ replaced; raises if one has no value."""
    with open(os.path.join(EXAMPLES_DIR, name)) as f:
        text = f.read()
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise KeyError("%s: no value for %s" % (name, ", ".join(missing)))
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
