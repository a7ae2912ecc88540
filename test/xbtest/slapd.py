r"""A throwaway OpenLDAP slapd (mdb database loaded with slapadd) in a temp dir, on 127.0.0.1.

    s = Slapd(workdir, users={'alice': 'pw'}, groups={'xmpp-users': ['alice']})
    s.start()                      # well under a second
    s.url, s.base_dn, s.people_dn, s.groups_dn, s.user_dn('alice')
    s.reader_dn, s.reader_password          # read-only bind DN for lookups
    s.search('(uid=alice)', attrs=['mail'])  # -> [(dn, {attr: [values]})] (ldapsearch CLI)
    s.bind_ok(s.user_dn('alice'), 'pw')      # -> True/False (ldapwhoami CLI)
    s.bind_rc(dn, '')                        # -> LDAP result code (53 for an empty password)
    s.stop()

Tree (suffix dc=example,dc=org by default):
    cn=admin,SUFFIX                  rootdn (.admin_dn / .admin_password), not in the database
    cn=reader,SUFFIX                 simpleSecurityObject, reads everything but passwords
    ou=people,SUFFIX  uid=U,...      inetOrgPerson: uid, cn, sn, mail, userPassword ({SSHA})
    ou=groups,SUFFIX  cn=G,...       groupOfNames: member = user DNs
Access: userPassword only for bind (and self write); any bound identity reads the rest; an
anonymous search sees nothing (the module has to bind as the reader to look users up).

search() returns DNs as slapd writes them: DN specials hex-escaped (uid=c\2Cd\2Be\3Df,...),
while user_dn() uses the RFC 4514 backslash form (uid=c\,d\+e\=f,...); both name the same entry.

Unless awkward=False, users with awkward uids are added for escaping tests (AWKWARD_USERS):
a quote, an inner space, filter metacharacters (* ( ) \), DN metacharacters (, + = ; < > #) and
non-ASCII. They are members of no group unless `groups` says so.
"""
import base64
import hashlib
import os
import subprocess
import time

from .ports import free_port
from .proc import PopenServer, tail, track

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
LDAPSEARCH = "/usr/bin/ldapsearch"
LDAPWHOAMI = "/usr/bin/ldapwhoami"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"

DEFAULT_USERS = {"alice": "alice-Pw-1", "bob": "bob-Pw-2", "carol": "carol-Pw-3"}
DEFAULT_GROUPS = {"xmpp-users": ["alice", "bob"], "admins": ["alice"]}
AWKWARD_USERS = {
    "o'neil": "oneil-Pw-4",        # quote
    "a b": "ab-Pw-5",              # inner space
    "x*y": "xy-Pw-6",              # filter wildcard
    "p(q)": "pq-Pw-7",             # filter parentheses
    "back\\slash": "bs-Pw-8",      # backslash (escaped in DNs and filters)
    "c,d+e=f": "cd-Pw-9",          # DN separators
    "semi;<gt>#": "sg-Pw-10",      # more DN specials (';' '<' '>'; '#' only special first)
    "\u00e9l\u00e8ve": "eleve-Pw-11",  # non-ASCII (UTF-8 on the wire)
}


def ssha(password, salt=None):
    """RFC 2307 {SSHA} hash (SHA-1 over password+salt, 8-byte random salt)."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    salt = os.urandom(8) if salt is None else salt
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password + salt).digest() + salt).decode()


def escape_dn_value(value):
    """RFC 4514 escaping of an attribute value inside a DN."""
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        elif ch == "\x00":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def escape_filter_value(value):
    """RFC 4515 escaping of an assertion value inside a search filter."""
    out = []
    for ch in value:
        if ch in "*()\\\x00":
            out.append("\\%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def _ldif_line(attr, value):
    """attr: value, base64 (attr:: ...) when LDIF requires it (RFC 2849 SAFE-STRING)."""
    if isinstance(value, bytes):
        raw = value
    else:
        raw = str(value).encode("utf-8")
    safe = (raw and all(0x01 <= b <= 0x7f and b not in (0x0a, 0x0d) for b in raw)
            and raw[:1] not in (b" ", b":", b"<") and not raw.endswith(b" "))
    if safe or raw == b"":
        return "%s: %s" % (attr, raw.decode("ascii"))
    return "%s:: %s" % (attr, base64.b64encode(raw).decode("ascii"))


def parse_ldif(text):
    """ldapsearch -LLL output -> [(dn, {attr: [str values]})] (unfolds lines, decodes base64)."""
    entries = []
    lines = []
    for line in text.splitlines():
        if line.startswith(" ") and lines:
            lines[-1] += line[1:]
        else:
            lines.append(line)
    dn, attrs = None, {}
    for line in lines + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if dn is not None:
                entries.append((dn, attrs))
            dn, attrs = None, {}
            continue
        name, value = line.split(":", 1)
        if value.startswith(":"):
            value = base64.b64decode(value[1:].strip()).decode("utf-8", errors="replace")
        else:
            value = value[1:] if value.startswith(" ") else value
        if name.lower() == "dn":
            dn = value
        else:
            attrs.setdefault(name, []).append(value)
    return entries


class Slapd(PopenServer):
    """A slapd instance; see the module docstring.

    Slapd(workdir, suffix='dc=example,dc=org', users=None (uid -> password; default
          DEFAULT_USERS), groups=None (cn -> [uids]; default DEFAULT_GROUPS restricted to existing
          users), extra_attrs=None (uid -> {attr: value or [values]}, added to that user's entry),
          awkward=True, reader_password='reader-Pw-0', port=None)
    start()/stop(); .port, .url, .base_dn, .people_dn, .groups_dn, .reader_dn, .reader_password,
    .admin_dn, .admin_password, .users, .groups, user_dn(uid), group_dn(cn), search(), bind_ok(),
    bind_rc(), mail(uid), .start_seconds,
    .pid, .log_path, log_tail().
    """

    log_tail_lines = 40

    def __init__(self, workdir, suffix="dc=example,dc=org", users=None, groups=None,
                 extra_attrs=None, awkward=True, reader_password="reader-Pw-0", port=None):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.suffix = suffix
        self.users = dict(DEFAULT_USERS if users is None else users)
        if awkward:
            for uid, pw in AWKWARD_USERS.items():
                self.users.setdefault(uid, pw)
        if groups is None:
            groups = {cn: [u for u in members if u in self.users]
                      for cn, members in DEFAULT_GROUPS.items()}
        self.groups = {cn: list(members) for cn, members in groups.items()}
        self.extra_attrs = dict(extra_attrs or {})
        self.reader_password = reader_password
        self.admin_password = "admin-Pw-0"
        self.port = port or free_port()
        self.conf_path = os.path.join(self.workdir, "slapd.conf")
        self.db_dir = os.path.join(self.workdir, "db")
        self.ldif_path = os.path.join(self.workdir, "data.ldif")
        self.pid_path = os.path.join(self.workdir, "slapd.pid")
        self.log_path = os.path.join(self.workdir, "slapd.log")
        self.proc = None
        self.start_seconds = None
        self._loaded = False

    # ------------------------------------------------------------------ names
    @property
    def url(self):
        return "ldap://127.0.0.1:%d" % self.port

    @property
    def base_dn(self):
        return self.suffix

    @property
    def people_dn(self):
        return "ou=people," + self.suffix

    @property
    def groups_dn(self):
        return "ou=groups," + self.suffix

    @property
    def reader_dn(self):
        return "cn=reader," + self.suffix

    @property
    def admin_dn(self):
        return "cn=admin," + self.suffix

    def user_dn(self, uid):
        return "uid=%s,%s" % (escape_dn_value(uid), self.people_dn)

    def group_dn(self, cn):
        return "cn=%s,%s" % (escape_dn_value(cn), self.groups_dn)

    def mail(self, uid):
        domain = ".".join(p.split("=", 1)[1] for p in self.suffix.split(",")
                          if p.lower().startswith("dc="))
        local = "".join(c if (c.isascii() and c.isalnum()) or c in ".-_" else "_" for c in uid)
        return "%s@%s" % (local, domain or "example.org")

    # ------------------------------------------------------------------ files
    def _write_config(self):
        os.makedirs(self.db_dir, exist_ok=True)
        schemas = ["core", "cosine", "inetorgperson", "nis"]
        lines = ["# generated by xbtest.slapd"]
        lines += ["include %s/%s.schema" % (SCHEMA_DIR, s) for s in schemas]
        lines += [
            "modulepath %s" % MODULE_DIR,
            "moduleload back_mdb",
            "pidfile %s" % self.pid_path,
            "argsfile %s" % os.path.join(self.workdir, "slapd.args"),
            "loglevel stats",
            "sizelimit 500",
            "",
            "database mdb",
            "maxsize 67108864",
            'suffix "%s"' % self.suffix,
            'rootdn "%s"' % self.admin_dn,
            "rootpw %s" % ssha(self.admin_password),
            "directory %s" % self.db_dir,
            "index objectClass eq",
            "index uid,cn eq,sub",
            "index member eq",
            "",
            "access to attrs=userPassword",
            "    by self =xw",
            "    by anonymous auth",
            "    by * none",
            "access to *",
            '    by dn.exact="%s" read' % self.reader_dn,
            "    by users read",
            "    by * none",
            "",
        ]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines))

    def _entries(self):
        def entry(dn, attrs):
            out = [_ldif_line("dn", dn)]
            for name, values in attrs:
                if not isinstance(values, (list, tuple)):
                    values = [values]
                for v in values:
                    out.append(_ldif_line(name, v))
            return "\n".join(out) + "\n"

        first_rdn = self.suffix.split(",")[0]
        attr, value = first_rdn.split("=", 1)
        base_attrs = [("objectClass", ["top", "dcObject", "organization"]), (attr, value),
                      ("o", "xbtest")]
        if attr.lower() != "dc":
            base_attrs = [("objectClass", ["top", "organization"]), ("o", value)]
        out = [entry(self.suffix, base_attrs),
               entry(self.reader_dn, [("objectClass", ["organizationalRole",
                                                       "simpleSecurityObject"]),
                                      ("cn", "reader"),
                                      ("description", "read-only lookups"),
                                      ("userPassword", ssha(self.reader_password))]),
               entry(self.people_dn, [("objectClass", "organizationalUnit"), ("ou", "people")]),
               entry(self.groups_dn, [("objectClass", "organizationalUnit"), ("ou", "groups")])]
        for uid, password in self.users.items():
            attrs = [("objectClass", ["inetOrgPerson"]), ("uid", uid),
                     ("cn", "User %s" % uid), ("sn", uid), ("mail", self.mail(uid)),
                     ("userPassword", ssha(password))]
            for name, values in self.extra_attrs.get(uid, {}).items():
                attrs.append((name, values))
            out.append(entry(self.user_dn(uid), attrs))
        for cn, members in self.groups.items():
            member_dns = [self.user_dn(u) for u in members] or [""]   # groupOfNames needs one
            out.append(entry(self.group_dn(cn), [("objectClass", "groupOfNames"), ("cn", cn),
                                                 ("member", member_dns)]))
        return "\n".join(out)

    def _load(self):
        self._write_config()
        with open(self.ldif_path, "w", encoding="utf-8") as f:
            f.write(self._entries())
        r = subprocess.run([SLAPADD, "-q", "-f", self.conf_path, "-l", self.ldif_path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                           cwd=self.workdir)
        if r.returncode != 0:
            raise RuntimeError("slapadd failed (%d): %s" % (r.returncode,
                                                           r.stdout.decode(errors="replace")))
        self._loaded = True

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout=10.0):
        if self.proc is not None and self.proc.poll() is None:
            return
        t0 = time.monotonic()
        if not self._loaded:
            self._load()
        log = open(self.log_path, "ab")
        # -d 0: stay in the foreground (stopped by PID); -s 0: nothing to syslog. Log lines
        # (loglevel stats) go to stderr = slapd.log.
        self.proc = subprocess.Popen([SLAPD, "-f", self.conf_path, "-h", self.url + "/",
                                      "-d", "stats", "-s", "0"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     cwd=self.workdir)
        log.close()
        track(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.stop()
                raise RuntimeError("slapd exited (%s) at start\n--- log:\n%s"
                                   % (rc, tail(self.log_path)))
            r = self._ldap(LDAPWHOAMI, ["-D", self.reader_dn, "-w", self.reader_password],
                           timeout=5, check=False)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("slapd did not answer on %s within %.0f s\n--- log:\n%s"
                                   % (self.url, timeout, tail(self.log_path)))
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - t0


    # ------------------------------------------------------------------ clients (CLI)
    def _ldap(self, tool, args, timeout=10, check=True):
        cmd = [tool, "-x", "-H", self.url, "-o", "nettimeout=5"]
        env = dict(os.environ)
        env["LDAPNOINIT"] = "1"          # ignore /etc/ldap/ldap.conf and ~/.ldaprc
        r = subprocess.run(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env, cwd=self.workdir)
        if check and r.returncode != 0:
            raise RuntimeError("%s %s failed (%d): %s" % (os.path.basename(tool), " ".join(args),
                                                          r.returncode,
                                                          r.stderr.decode(errors="replace")))
        return r

    def search(self, filterstr="(objectClass=*)", attrs=(), base=None, scope="sub",
               bind_dn=None, password=None, anonymous=False):
        """ldapsearch as the reader (default), as bind_dn/password, or anonymously ->
        [(dn, {attr: [values]})]. Raises RuntimeError on an LDAP error (not on no results)."""
        args = ["-LLL", "-o", "ldif-wrap=no", "-b", base or self.base_dn, "-s", scope]
        if not anonymous:
            args += ["-D", bind_dn or self.reader_dn,
                     "-w", password if bind_dn else self.reader_password]
        r = self._ldap(LDAPSEARCH, args + [filterstr] + list(attrs), check=False)
        if r.returncode not in (0, 32):          # 32 noSuchObject: no results
            raise RuntimeError("ldapsearch %s failed (%d): %s" % (filterstr, r.returncode,
                                                                 r.stderr.decode(errors="replace")))
        return parse_ldif(r.stdout.decode("utf-8", errors="replace"))

    def bind_rc(self, dn, password):
        """LDAP result code of a simple bind as dn/password (ldapwhoami): 0 success,
        49 invalidCredentials (wrong password or no such DN), 53 unwillingToPerform (an empty
        password: slapd refuses an unauthenticated bind). Raises if the server is unreachable."""
        r = self._ldap(LDAPWHOAMI, ["-D", dn, "-w", password], check=False)
        if r.returncode in (0, 32, 34, 48, 49, 50, 53):
            return r.returncode
        raise RuntimeError("ldapwhoami as %s failed (%d): %s" % (dn, r.returncode,
                                                                 r.stderr.decode(errors="replace")))

    def bind_ok(self, dn, password):
        """True if an LDAP simple bind as dn/password succeeds."""
        return self.bind_rc(dn, password) == 0
