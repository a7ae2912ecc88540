#!/usr/bin/python3
"""How long one prebind takes: HTTP GET /prebind with the site login (HTTP Basic) -> 200
{"jid","sid","rid"}, i.e. Apache auth, the handler, the daemon's XMPP login on the user's behalf
(TCP, STARTTLS with certificate check, SASL PLAIN with a freshly minted JWT, stream restart,
bind) and the answer. Sequential calls; the session each call creates is ended right after it
(untimed), so every call sees the same idle server.

  cd test && /usr/bin/python3 e2e/measure_prebind.py [--calls 100] [--warmup 3]
                                  [--server prosody|ejabberd] [--keepalive] [--json FILE]
                                  [--xmpp-extra 'network_settings = { nagle = false }']

Starts its own Prosody (token provider) or ejabberd (JWT host) and Apache (event MPM) with the
module (a copy of env XB_MODULE or .libs/mod_xmpp_bridge.so) on loopback, as in the prebind
end-to-end test (xbe2e.PrebindSite), and stops them at the end.

Prints, in ms: the client-side wall time per call (request written -> body read) as min, median,
p90 (nearest rank), p99, max, mean, and Apache's own %D for the same requests; the warm-up calls
(the first is the cold one) are reported apart. --keepalive reuses one HTTP connection, as a
browser would; the default opens a new one per call.

Prosody 0.12 with its default `nagle = true` costs ~45 ms per login on loopback: its TLS
handshake writes stall on Nagle against the peer's delayed ACK (a direct STARTTLS from Python
shows the same ~48 ms; ejabberd ~4 ms). --xmpp-extra 'network_settings = { nagle = false }'
shows the difference.
"""
import argparse
import http.client
import json
import math
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import xbe2e  # noqa: E402
from xbtest.apache import default_module_path  # noqa: E402
from xbtest.bosh import BoshClient  # noqa: E402
from xbtest.ca import TestCA  # noqa: E402

USERS = {"alice": "alice-site-measure"}


def nearest_rank(sorted_values, q):
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def summary(values):
    v = sorted(values)
    return {"n": len(v), "min": round(v[0], 2), "median": round(statistics.median(v), 2),
            "p90": round(nearest_rank(v, 0.90), 2), "p99": round(nearest_rank(v, 0.99), 2),
            "max": round(v[-1], 2), "mean": round(statistics.fmean(v), 2)}


def end_session(site, answer):
    """Terminate the prebound session with the rid the browser would have used first."""
    c = BoshClient(site.url("/http-bind"), site.domain, wait=10,
                   headers=site.site_headers("alice"))
    c.sid = answer["sid"]
    c.rid = int(answer["rid"]) - 1
    try:
        c.terminate(timeout=10)
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--server", default="prosody", choices=["prosody", "ejabberd"])
    ap.add_argument("--keepalive", action="store_true", help="one HTTP connection for all calls")
    ap.add_argument("--xmpp-extra", default="",
                    help="appended to the server's config, e.g. for Prosody "
                         "'network_settings = { nagle = false }'")
    ap.add_argument("--json", default=None, help="also write the result (with every sample)")
    args = ap.parse_args()

    module = default_module_path()
    if not os.path.exists(module):
        raise SystemExit("the module is not built: %s" % module)
    work = tempfile.mkdtemp(prefix="xb-measure-prebind-")
    os.chmod(work, 0o755)
    copy = os.path.join(work, "mod_xmpp_bridge.so")
    shutil.copy2(module, copy)
    os.chmod(copy, 0o755)
    ca = TestCA(os.path.join(work, "ca"))
    site = xbe2e.PrebindSite(os.path.join(work, "site"), args.server, ca, copy, USERS,
                             xmpp_extra=args.xmpp_extra)
    site.start()
    conn = None
    try:
        url = site.url("/prebind")
        host, port = "127.0.0.1", site.apache.port
        if args.keepalive:
            conn = http.client.HTTPConnection(host, port, timeout=30)
        log_start = len(site.apache.access_log_entries())
        samples, warm = [], []
        for i in range(args.warmup + args.calls):
            status, answer, took = xbe2e.http_prebind(url, "alice", USERS["alice"], conn=conn)
            if status != 200 or not isinstance(answer, dict):
                raise SystemExit("call %d: HTTP %s %r" % (i + 1, status, answer))
            (warm if i < args.warmup else samples).append(took * 1000.0)
            end_session(site, answer)
        entries = [e for e in site.apache.access_log_entries()[log_start:]
                   if e["request"].startswith("GET /prebind ")]
        server_ms = [e["usec"] / 1000.0 for e in entries[args.warmup:]]
        result = {
            "server": args.server, "calls": args.calls, "warmup": args.warmup,
            "keepalive": args.keepalive, "mpm": "event", "xmpp_extra": args.xmpp_extra,
            "example": site.example_name(),
            "warmup_ms": [round(x, 2) for x in warm],
            "client_ms": summary(samples),
            "apache_D_ms": summary(server_ms) if len(server_ms) == args.calls else None,
        }
        print("prebind against %s, %d sequential calls (%s), after %d warm-up call(s) %s ms:"
              % (args.server, args.calls,
                 "one keep-alive connection" if args.keepalive else "a new connection each",
                 args.warmup, ", ".join("%.1f" % x for x in warm)))
        for name in ("client_ms", "apache_D_ms"):
            s = result[name]
            if s:
                print("  %-12s median %.1f  p90 %.1f  p99 %.1f  min %.1f  max %.1f  mean %.1f"
                      % (name, s["median"], s["p90"], s["p99"], s["min"], s["max"], s["mean"]))
        if args.json:
            result["client_samples_ms"] = [round(x, 3) for x in samples]
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        print(json.dumps(result))
        return 0
    finally:
        if conn is not None:
            conn.close()
        site.stop()
        if os.environ.get("XB_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
