"""CA + Prosody + Apache (with the module, or a proxy to Prosody's BOSH) in one object, for
scripts (demo) and fixtures.

    with Stack('/tmp/x', mpm='event') as s:      # target='module' | 'proxy' | 'prosody'
        print(s.bosh_url)
"""
import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

from .apache import Apache, default_module_path
from .ca import TestCA
from .prosody import Prosody

DEFAULT_USERS = {"alice": "alice-Pw-1", "bob": "bob-Pw-2", "carol": "carol-Pw-3"}

# what a site login by HTTP Basic against an htpasswd file needs (the prebind tests' site)
SITE_AUTH_MODULES = ("auth_basic", "authn_core", "authn_file", "authz_user")


def site_htpasswd(workdir, site_users):
    """workdir/htpasswd with the site's users ({name: password}), readable by Apache."""
    path = os.path.join(workdir, "htpasswd")
    for i, (user, pw) in enumerate(site_users.items()):
        subprocess.run(["htpasswd", "-b" + ("c" if i == 0 else ""), path, user, pw],
                       check=True, capture_output=True)
    os.chmod(path, 0o644)
    return path


def prebind_json(apache, user, password, path="/prebind"):
    """GET the prebind location as the site's user `user` (HTTP Basic): (status, the JSON
    answer as a dict; {} for an empty body)."""
    req = urllib.request.Request(apache.url(path), headers={"Accept": "application/json"})
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    req.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def token_prebind_conf(module_path, prosody, ca, module_key, htpasswd):
    """conf-examples/prebind-token-prosody.conf for `prosody` (a token_prosody) and the site's
    htpasswd; module_key: the module's copy of the token key."""
    from .examples import render_example
    return render_example("prebind-token-prosody.conf", {
        "MODULE_PATH": module_path, "XMPP_DOMAIN": prosody.domain,
        "XMPP_PORT": prosody.c2s_port, "CA_FILE": ca.cert_path, "TOKEN_KEY_FILE": module_key,
        "HTPASSWD_FILE": htpasswd})


def bridge_conf(prosody, ca, max_wait=30, extra=""):
    """The module configuration the suite uses (directive names: docs/dev/directives.md)."""
    return """\
XmppBridgeDomain {domain} 127.0.0.1:{port} starttls
XmppBridgeTLSCAFile {cafile}
XmppBridgeMaxWait {max_wait}
# every test client is 127.0.0.1 (test_135 sets a limit of its own)
XmppBridgeMaxSessionsPerAddress 0
<Location /http-bind>
    SetHandler xmpp-bosh
</Location>
<Location /xmpp-status>
    SetHandler xmpp-bridge-status
    Require local
</Location>
{extra}
""".format(domain=prosody.domain, port=prosody.c2s_port, cafile=ca.cert_path,
           max_wait=max_wait, extra=extra)


def proxy_conf(prosody, extra=""):
    """mod_proxy_http in front of Prosody's own BOSH (validates the Apache side)."""
    return """\
ProxyTimeout 90
ProxyPass /http-bind {url} timeout=90
ProxyPassReverse /http-bind {url}
{extra}
""".format(url=prosody.bosh_url, extra=extra)


def make_apache(workdir, mpm, prosody, ca, target="module", extra="", max_wait=30,
                module_path=None, modules=(), port=None):
    """An Apache (not started) for `target`: 'module' (mod_xmpp_bridge) or 'proxy'."""
    if target == "module":
        return Apache(workdir, mpm=mpm, module_path=module_path or default_module_path(),
                      extra_conf=bridge_conf(prosody, ca, max_wait, extra), modules=modules,
                      port=port)
    if target == "proxy":
        return Apache(workdir, mpm=mpm, modules=("proxy", "proxy_http") + tuple(modules),
                      extra_conf=proxy_conf(prosody, extra), port=port)
    raise ValueError("no Apache for target %r" % target)


class Stack:
    """Stack(workdir, mpm='event', target='module', users=DEFAULT_USERS, domain='example.test',
    extra_conf='', max_wait=30, port=None): .ca, .prosody, .apache (None for 'prosody'),
    .bosh_url, .domain, start(), stop()."""

    def __init__(self, workdir, mpm="event", target="module", users=None,
                 domain="example.test", extra_conf="", max_wait=30, port=None, modules=()):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.target = target
        self.domain = domain
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.ca = TestCA(os.path.join(self.workdir, "ca"))
        self.prosody = Prosody(os.path.join(self.workdir, "prosody"), domain=domain,
                               users=self.users, ca=self.ca, bosh=True, bosh_max_wait=max_wait)
        self.apache = None
        if target != "prosody":
            self.apache = make_apache(os.path.join(self.workdir, "apache-" + mpm), mpm,
                                      self.prosody, self.ca, target=target, extra=extra_conf,
                                      max_wait=max_wait, port=port, modules=modules)

    @property
    def bosh_url(self):
        return self.apache.url("/http-bind") if self.apache else self.prosody.bosh_url

    def start(self):
        self.prosody.start()
        if self.apache:
            try:
                self.apache.start()
            except Exception:
                self.prosody.stop()
                raise
        return self

    def stop(self):
        try:
            if self.apache:
                self.apache.stop()
        finally:
            self.prosody.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
