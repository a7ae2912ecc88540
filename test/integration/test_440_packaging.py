"""Packaging: `make install` honours DESTDIR and ships the .load/.conf pair, and on a Debian
Apache `a2enmod xmpp_bridge` loads the installed module.

The second test changes the machine's own Apache installation (it installs into
/usr/lib/apache2/modules and /etc/apache2 and takes it all back out afterwards), so it runs only
as root and where that is wanted: under CI (CI=true) or with XB_SYSTEM_TESTS=1."""
import os
import shutil
import subprocess
import tempfile

import pytest

import conftest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module packaging")


def make(*args, env=None):
    r = subprocess.run(["make", "-s", "-C", REPO] + list(args), capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_441_install_honours_destdir(workdir):
    dest = tempfile.mkdtemp(dir=workdir, prefix="destdir-")
    make("install", "DESTDIR=" + dest)
    module = os.path.join(dest, "usr/lib/apache2/modules/mod_xmpp_bridge.so")
    load = os.path.join(dest, "etc/apache2/mods-available/xmpp_bridge.load")
    conf = os.path.join(dest, "etc/apache2/mods-available/xmpp_bridge.conf")
    for path in (module, load, conf):
        assert os.path.isfile(path), path
    with open(load) as f:
        assert "LoadModule xmpp_bridge_module /usr/lib/apache2/modules/mod_xmpp_bridge.so" \
            in f.read()


@pytest.mark.skipif(os.getuid() != 0 or not (os.environ.get("CI") == "true"
                                              or os.environ.get("XB_SYSTEM_TESTS") == "1"),
                    reason="changes the system Apache: runs under CI=true or XB_SYSTEM_TESTS=1")
def test_442_a2enmod_loads_the_module():
    installed = ["/usr/lib/apache2/modules/mod_xmpp_bridge.so",
                 "/etc/apache2/mods-available/xmpp_bridge.load",
                 "/etc/apache2/mods-available/xmpp_bridge.conf"]
    preexisting = [p for p in installed if os.path.exists(p)]
    backup = tempfile.mkdtemp()
    for p in preexisting:
        shutil.copy2(p, backup)
    try:
        make("install")
        r = subprocess.run(["a2enmod", "xmpp_bridge"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run(["apache2ctl", "-t", "-D", "DUMP_MODULES"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "xmpp_bridge_module (shared)" in r.stdout, r.stdout
    finally:
        subprocess.run(["a2dismod", "-q", "xmpp_bridge"], capture_output=True, timeout=60)
        for p in installed:
            if os.path.exists(p):
                os.unlink(p)
        for p in preexisting:
            shutil.copy2(os.path.join(backup, os.path.basename(p)), p)
        shutil.rmtree(backup, ignore_errors=True)
