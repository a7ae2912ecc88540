"""A throwaway certificate authority made with the openssl CLI."""
import os
import subprocess

OPENSSL = "openssl"


def _run(args, cwd):
    r = subprocess.run([OPENSSL] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed (%d): %s" % (args[0], r.returncode,
                                                          r.stderr.decode(errors="replace")))
    return r


class TestCA:
    """A self-signed CA in `workdir` (created if missing).

    .cert_path      the CA certificate (PEM), world-readable
    issue(domain)   -> (cert_path, key_path): a server certificate with SAN DNS:domain, signed by
                    this CA; cert and key are readable by the prosody / www-data users.
    """
    __test__ = False  # not a pytest test class

    def __init__(self, workdir):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.cert_path = os.path.join(self.workdir, "ca.crt")
        self.key_path = os.path.join(self.workdir, "ca.key")
        self._serial = 1000
        if not os.path.exists(self.cert_path):
            _run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
                  "-subj", "/CN=xbtest CA", "-keyout", self.key_path, "-out", self.cert_path,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], self.workdir)
        os.chmod(self.cert_path, 0o644)
        os.chmod(self.key_path, 0o600)
        self.issued = {}

    def issue(self, domain):
        """Issue a server certificate for `domain` -> (cert_path, key_path)."""
        if domain in self.issued:
            return self.issued[domain]
        base = os.path.join(self.workdir, domain)
        key, csr, crt, ext = base + ".key", base + ".csr", base + ".crt", base + ".ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\n" % domain)
            f.write("basicConstraints=CA:FALSE\n")
            f.write("keyUsage=digitalSignature,keyEncipherment\n")
            f.write("extendedKeyUsage=serverAuth,clientAuth\n")
        _run(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256", "-subj", "/CN=%s" % domain,
              "-keyout", key, "-out", csr], self.workdir)
        self._serial += 1
        _run(["x509", "-req", "-in", csr, "-CA", self.cert_path, "-CAkey", self.key_path,
              "-set_serial", str(self._serial), "-days", "2", "-sha256", "-extfile", ext,
              "-out", crt], self.workdir)
        # readable by the prosody user (and www-data): a throwaway test key
        os.chmod(crt, 0o644)
        os.chmod(key, 0o644)
        self.issued[domain] = (crt, key)
        return crt, key
