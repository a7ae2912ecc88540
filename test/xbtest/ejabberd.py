"""A throwaway ejabberd 23.01 (c2s with STARTTLS required, its own BOSH) in a temp dir, on
127.0.0.1, self-contained: no epmd, no system cookie, no /etc/ejabberd, no /var/lib/ejabberd.

    e = Ejabberd(workdir, domain='example.test', ca=TestCA, users={'alice': 'pw'})
    e.start()            # ~1 s to a verified login (+0.25 s per registered user)
    e.c2s_port, e.http_port, e.bosh_url, e.domain, e.log_dir
    e.stop()

    write_jwk(path, secret)                           # JWK {"kty":"oct","k":...}, mode 0600
    e = Ejabberd(workdir, jwt_key_path=path)          # auth_method [jwt] for the domain
    make_jwt(secret, {'jid': 'alice@example.test', 'exp': int(time.time()) + 60})

How it stays self-contained (see shared/PITFALLS.md):
  - ejabberdctl --config-dir/--ctl-config/--logs/--spool point into workdir; the ctl config sets
    EXEC_CMD=as_current_user (no `su ejabberd`, which would reset HOME and read the system
    cookie), HOME is workdir/home, the cookie is passed with -setcookie;
  - ERL_DIST_PORT: the node listens for distribution on that fixed port (loopback only, via
    -kernel inet_dist_use_interface) and neither the node nor ejabberdctl starts or asks epmd
    (this also skips ejabberdctl's `pgrep beam` checks); the node name is unique per instance;
  - the beam PID comes from EJABBERD_PID_PATH; stop() is SIGTERM, bounded wait, SIGKILL, and
    the children it spawned (erl_child_setup, inet_gethost, epmd if any) are found via /proc
    parentage and killed by PID.
The node runs as the current user (root in CI): files it reads need no chown.
"""
import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import time

from .ca import TestCA
from .ports import free_port, wait_for_port
from .proc import Server, descendants, kill_pids, pid_alive, tail, track, untrack, \
    wait_pid_gone
from .xmpp_direct import XmppDirect, login

EJABBERDCTL = "/usr/sbin/ejabberdctl"
ERL = "/usr/bin/erl"

_instances = 0


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def write_jwk(path, secret_bytes, owner=None):
    """Write the HS256 key as a JWK file {"kty":"oct","k":"<base64url>"} (what ejabberd's
    `jwt_key` reads), mode 0600; `owner` (user name) chowns it, for a server run as that user."""
    if isinstance(secret_bytes, str):
        secret_bytes = secret_bytes.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"kty": "oct", "k": b64url(secret_bytes)}, f)
    os.chmod(path, 0o600)
    if owner:
        import pwd
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def make_jwt(secret_bytes, claims, alg="HS256", header=None):
    """An HS256 JWS compact token over `claims` (dict). alg='none' gives an unsigned token (for
    refusal tests); `header` overrides the header dict."""
    if isinstance(secret_bytes, str):
        secret_bytes = secret_bytes.encode("utf-8")
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = (b64url(json.dumps(hdr, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    if alg == "none":
        return signing_input + "."
    if alg != "HS256":
        raise ValueError("only HS256 (or none) here")
    sig = hmac.new(secret_bytes, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def _q(s):
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(s))


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


class Ejabberd(Server):
    """An ejabberd node; see the module docstring.

    Ejabberd(workdir, domain='example.test', ca=None (TestCA; one is made in workdir if None),
             users=None (user -> password, registered with `ejabberdctl register` after start;
             internal auth only), jwt_key_path=None (JWK file -> auth_method [jwt] for the
             domain), bosh=True, ldap=None (a started-or-not Slapd -> auth_method [ldap] against
             it; uids are XMPP localparts), extra_yaml='' (appended top-level YAML),
             loglevel='info', bosh_options='' (mod_bosh options as a YAML flow map body,
             e.g. 'max_inactivity: 10'))
    start()/stop(); register(user, password); ctl(*args); .c2s_port, .http_port, .bosh_url,
    .dist_port, .domain, .log_dir, .log_path, .config_path, .pid, .child_pids, .node, .ca,
    .start_seconds, log_tail().
    """

    def __init__(self, workdir, domain="example.test", ca=None, users=None, jwt_key_path=None,
                 bosh=True, ldap=None, extra_yaml="", loglevel="info",
                 bosh_options=""):
        global _instances
        _instances += 1
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.domain = domain
        self.users = dict(users or {})
        self.jwt_key_path = os.path.abspath(jwt_key_path) if jwt_key_path else None
        self.ldap = ldap
        self.bosh = bosh
        self.extra_yaml = extra_yaml
        self.loglevel = loglevel
        self.bosh_options = bosh_options
        if self.users and (self.jwt_key_path or self.ldap):
            raise ValueError("users are registered only with internal auth")
        self.ca = ca if ca is not None else TestCA(os.path.join(self.workdir, "ca"))
        self.cert_path, self.key_path = self.ca.issue(domain)
        self.c2s_port = free_port()
        self.http_port = free_port() if bosh else None
        self.dist_port = free_port()
        self.bosh_url = ("http://127.0.0.1:%d/bosh" % self.http_port) if bosh else None
        self.config_dir = os.path.join(self.workdir, "etc")
        self.config_path = os.path.join(self.config_dir, "ejabberd.yml")
        self.ctl_config_path = os.path.join(self.config_dir, "ejabberdctl.cfg")
        self.log_dir = os.path.join(self.workdir, "log")
        self.log_path = os.path.join(self.log_dir, "ejabberd.log")
        self.spool_dir = os.path.join(self.workdir, "spool")
        self.home = os.path.join(self.workdir, "home")
        self.pid_path = os.path.join(self.workdir, "ejabberd.pid")
        self.console_path = os.path.join(self.workdir, "console.log")
        self.node = "xbtest%d_%d_%s@localhost" % (os.getpid(), _instances, secrets.token_hex(3))
        self.cookie = secrets.token_hex(16)
        self._pid = None
        self._children = []
        self.start_seconds = None
        self._t_ctl = None
        self._write_config()

    # ------------------------------------------------------------------ config
    def _write_config(self):
        for d in (self.config_dir, self.log_dir, self.spool_dir, self.home):
            os.makedirs(d, exist_ok=True)
        y = [
            "# generated by xbtest.ejabberd",
            "hosts:",
            "  - %s" % _q(self.domain),
            "loglevel: %s" % self.loglevel,
            "log_rotate_count: 0",
            "hide_sensitive_log_data: false",
            "certfiles:",
            "  - %s" % _q(self.cert_path),
            "  - %s" % _q(self.key_path),
            "ca_file: %s" % _q(self.ca.cert_path),
            "default_db: mnesia",
            "language: en",
            "listen:",
            "  -",
            "    port: %d" % self.c2s_port,
            "    ip: \"127.0.0.1\"",
            "    module: ejabberd_c2s",
            "    starttls_required: true",
            "    max_stanza_size: 262144",
            "    access: c2s",
        ]
        if self.bosh:
            y += [
                "  -",
                "    port: %d" % self.http_port,
                "    ip: \"127.0.0.1\"",
                "    module: ejabberd_http",
                "    request_handlers:",
                "      /bosh: mod_bosh",
            ]
        y += [
            "acl:",
            "  loopback:",
            "    ip:",
            "      - 127.0.0.0/8",
            "access_rules:",
            "  c2s:",
            "    allow: all",
            "  local:",
            "    allow: all",
            "api_permissions:",
            "  \"console commands\":",
            "    from:",
            "      - ejabberd_ctl",
            "    who: all",
            "    what: \"*\"",
            "s2s_access: none",
            "auth_method: [mnesia]",
            "auth_password_format: scram",
            "modules:",
            "  mod_disco: {}",
            "  mod_ping: {}",
            "  mod_roster: {}",
        ]
        if self.bosh:
            y += ["  mod_bosh: {%s}" % self.bosh_options]
        host = []
        if self.jwt_key_path:
            host += ["    auth_method: [jwt]",
                     "    jwt_key: %s" % _q(self.jwt_key_path)]
        elif self.ldap is not None:
            host += ["    auth_method: [ldap]",
                     "    ldap_servers: [\"127.0.0.1\"]",
                     "    ldap_port: %d" % self.ldap.port,
                     "    ldap_rootdn: %s" % _q(self.ldap.reader_dn),
                     "    ldap_password: %s" % _q(self.ldap.reader_password),
                     "    ldap_base: %s" % _q(self.ldap.people_dn),
                     "    ldap_uids: {\"uid\": \"%u\"}",
                     "    ldap_filter: \"(objectClass=inetOrgPerson)\""]
        if host:
            y += ["host_config:", "  %s:" % _q(self.domain)] + host
        y += [self.extra_yaml, ""]
        with open(self.config_path, "w") as f:
            f.write("\n".join(y))
        os.chmod(self.config_path, 0o600)
        erl_opts = ("-env ERL_CRASH_DUMP_BYTES 0 -setcookie %s "
                    "-kernel inet_dist_use_interface {127,0,0,1}" % self.cookie)
        ctl = [
            "# generated by xbtest.ejabberd (sourced by ejabberdctl)",
            "EXEC_CMD=as_current_user",
            "ERLANG_NODE=%s" % self.node,
            "ERL_DIST_PORT=%d" % self.dist_port,
            "ERL_EPMD_ADDRESS=127.0.0.1",
            "ERL_OPTIONS=\"%s\"" % erl_opts,
            "EJABBERD_PID_PATH=%s" % self.pid_path,
            "EJABBERD_CONFIG_PATH=%s" % self.config_path,
            "EJABBERD_BYPASS_WARNINGS=true",
            "CONTRIB_MODULES_PATH=%s" % os.path.join(self.workdir, "modules"),
            "CONTRIB_MODULES_CONF_DIR=%s" % os.path.join(self.config_dir, "modules.d"),
            "",
        ]
        with open(self.ctl_config_path, "w") as f:
            f.write("\n".join(ctl))

    def _env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("EJABBERD", "ERL_", "ERLANG_", "CONTRIB_MODULES"))}
        env["HOME"] = self.home
        env["ERL_CRASH_DUMP_BYTES"] = "0"
        return env

    def _ctl_cmd(self, args):
        return [EJABBERDCTL, "--config-dir", self.config_dir, "--ctl-config",
                self.ctl_config_path, "--logs", self.log_dir, "--spool", self.spool_dir] + \
            list(args)

    def ctl(self, *args, timeout=30, check=True):
        """Run `ejabberdctl ARGS` against this node -> CompletedProcess (text stdout)."""
        r = subprocess.run(self._ctl_cmd(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           cwd=self.workdir, env=self._env())
        out = r.stdout.decode(errors="replace")
        if check and r.returncode != 0:
            raise RuntimeError("ejabberdctl %s failed (%d): %s" % (" ".join(args), r.returncode,
                                                                  out))
        r.stdout = out
        return r

    # ------------------------------------------------------------------ users
    def register(self, user, password):
        """Create an account (internal auth; the node must be running)."""
        self.ctl("register", user, self.domain, password)
        self.users[user] = password

    # ------------------------------------------------------------------ lifecycle
    def _node_pids(self):
        """Processes whose command line carries our unique `-sname NODE`: the beam, or erlexec
        on its way to it (`erl -detached` forks twice before it execs the beam). ctl nodes
        have other names."""
        frag = b"\0-sname\0" + self.node.encode() + b"\0"
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if frag in f.read():
                        out.append(int(d))
            except OSError:
                continue
        return [p for p in out if pid_alive(p)]

    def _find_pid(self):
        """The beam's PID: from EJABBERD_PID_PATH, else (before ejabberd wrote it) the
        beam.smp with our node name; None while only erlexec is on its way."""
        try:
            with open(self.pid_path) as f:
                pid = int(f.read().strip() or 0)
            if pid > 0:
                return pid
        except (OSError, ValueError):
            pass
        for p in self._node_pids():
            if _comm(p) == "beam.smp":
                return p
        return None

    def _remember_children(self):
        if self._pid:
            for c in descendants(self._pid):
                if c not in self._children:
                    self._children.append(c)

    def _alive(self):
        if self._pid is None:
            self._pid = self._find_pid()
            if self._pid is None:
                # erlexec still forking, or a moment before /proc shows the beam
                return bool(self._node_pids()) or time.monotonic() - self._t_ctl < 10.0
        return pid_alive(self._pid)

    def _fail(self, why):
        self.stop()
        raise RuntimeError("ejabberd %s\n--- console:\n%s\n--- log (%s):\n%s"
                           % (why, tail(self.console_path, 20), self.log_path,
                              tail(self.log_path, 40)))

    def start(self, timeout=30.0):
        """Start the node, register the users, and verify a real c2s login (STARTTLS + SASL +
        bind); raises with the log tail after `timeout`."""
        if self._pid is not None and pid_alive(self._pid):
            return
        t0 = time.monotonic()
        deadline = t0 + timeout
        if os.path.exists(self.pid_path):
            os.unlink(self.pid_path)
        track(self)
        self._t_ctl = time.monotonic()
        try:
            with open(self.console_path, "ab") as console:
                r = subprocess.run(self._ctl_cmd(["start"]), stdin=subprocess.DEVNULL,
                                   stdout=console, stderr=console, timeout=timeout,
                                   cwd=self.workdir, env=self._env())
        except subprocess.TimeoutExpired:
            self._fail("start: ejabberdctl start did not return within %.0f s" % timeout)
        self._t_ctl = time.monotonic()
        if r.returncode != 0:
            self._fail("start: ejabberdctl start exited %d" % r.returncode)
        self._pid = self._find_pid()
        ports = [self.c2s_port] + ([self.http_port] if self.bosh else [])
        for port in ports:
            if not wait_for_port(port, timeout=max(0.1, deadline - time.monotonic()),
                                 alive=self._alive):
                self._fail("did not listen on 127.0.0.1:%d (%s)"
                           % (port, "its beam is gone" if not self._alive()
                              else "not within %.0f s" % timeout))
        # the pid file is written during start-up; take it now
        while time.monotonic() < deadline and not os.path.exists(self.pid_path):
            time.sleep(0.05)
        pid = self._find_pid()
        if pid is None:
            self._fail("wrote no pid file %s" % self.pid_path)
        self._pid = pid
        self._remember_children()
        try:
            for user, password in list(self.users.items()):
                self.register(user, password)
        except Exception as e:      # noqa: BLE001 - reported with the log tail
            self._fail("started but registering users failed: %s" % (e,))
        # a real login proves TLS, SASL and the auth backend work
        last = None
        while time.monotonic() < deadline:
            try:
                if self.users:
                    user, password = next(iter(self.users.items()))
                    login("127.0.0.1", self.c2s_port, self.domain, user, password, self.ca,
                          timeout=5)
                elif self.jwt_key_path:
                    with open(self.jwt_key_path) as f:
                        k = json.load(f)["k"]
                    secret = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
                    token = make_jwt(secret, {"jid": "xbtest-probe@" + self.domain,
                                              "exp": int(time.time()) + 60})
                    login("127.0.0.1", self.c2s_port, self.domain, "xbtest-probe", token,
                          self.ca, timeout=5)
                else:
                    # no credentials known: STARTTLS and a SASL offer must work
                    with XmppDirect("127.0.0.1", self.c2s_port, self.domain, self.ca,
                                    timeout=5) as c:
                        c.connect()
                        c.starttls()
                        if "PLAIN" not in c.mechanisms:
                            raise RuntimeError("no PLAIN offered: %s" % c.mechanisms)
                last = None
                break
            except Exception as e:      # noqa: BLE001 - retried until the deadline
                last = e
                if not pid_alive(self._pid):
                    break
                time.sleep(0.1)
        if last is not None:
            self._fail("started but a login failed: %r" % (last,))
        self._remember_children()
        self.start_seconds = time.monotonic() - t0

    def stop(self, timeout=5.0):
        """Bounded stop by PID: SIGTERM the beam, wait, SIGKILL; then kill what it spawned."""
        pid = self._pid if self._pid is not None else self._find_pid()
        if pid is not None and pid_alive(pid):
            self._remember_children()
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not wait_pid_gone(pid, timeout):
                kill_pids([pid])
                wait_pid_gone(pid, 5.0)
        # a beam (or erlexec) that never wrote its pid file, e.g. a start that failed early:
        # found by its unique node name, scanned again since erlexec may fork meanwhile
        if self._t_ctl is not None:
            for _ in range(20):
                rest = self._node_pids()
                if not rest:
                    break
                for p in rest:
                    self._pid = p
                    self._remember_children()
                kill_pids(rest)
                for p in rest:
                    wait_pid_gone(p, 2.0)
        # children (erl_child_setup, inet_gethost, epmd): by PID, only while still ours
        left = [c for c in self._children
                if pid_alive(c) and _comm(c) in ("erl_child_setup", "inet_gethost", "epmd",
                                                 "beam.smp", "erlexec", "heart")]
        if left:
            kill_pids(left, signal.SIGTERM)
            for c in left:
                if not wait_pid_gone(c, 1.0):
                    kill_pids([c])
        self._pid = None
        self._children = []
        untrack(self)

    @property
    def pid(self):
        return self._pid

    @property
    def child_pids(self):
        """Processes the beam spawned (erl_child_setup, inet_gethost), as last seen."""
        self._remember_children()
        return list(self._children)

    def log_tail(self, n=60):
        return tail(self.log_path, n)
