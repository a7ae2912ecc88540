#!/usr/bin/python3
"""Checks a running demo (scripts/demo.sh) the way two people would use it: alice and bob each
open the chat page in their own headless Chromium with only their site login (HTTP Basic),
Converse.js is logged in by prebind, alice writes to bob, bob answers; screenshots of both.

  /usr/bin/python3 test/e2e/check_demo.py [--state /tmp/mod_xmpp_bridge-demo.json] [--out DIR]

Reads the URL and the demo logins from the demo's state file. Every wait is bounded; the exit
status is 0 only if both messages arrived. Prints one JSON line with the steps and times.
"""
import argparse
import json
import os
import secrets
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xbe2e  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", default=os.environ.get("XB_DEMO_STATE",
                                                      "/tmp/mod_xmpp_bridge-demo.json"))
    ap.add_argument("--out", default=None, help="screenshots (default: a new temp dir)")
    args = ap.parse_args()
    with open(args.state) as f:
        st = json.load(f)
    if "site_users" not in st:
        raise SystemExit("the demo runs without prebind (target %s)" % st.get("target"))
    out = args.out or tempfile.mkdtemp(prefix="xb-demo-check-")
    os.makedirs(out, exist_ok=True)
    domain, users = st["domain"], st["site_users"]
    origin = st["url"].rstrip("/")
    result = {"ok": False, "url": st["chat_url"], "out": out, "steps": []}
    t0 = time.monotonic()

    def step(name, fn):
        t = time.monotonic()
        v = fn()
        result["steps"].append({"step": name, "s": round(time.monotonic() - t, 3)})
        return v

    b = xbe2e.BrowserDriver(origin, out, timeout=180)
    try:
        for u in ("alice", "bob"):
            step("launch " + u, lambda u=u: b.call("launch", ms=45000, ctx=u, username=u,
                                                   password=users[u]))
            step(u + " opens /chat/", lambda u=u: b.call("goto", ctx=u, path="/chat/"))
        jids = {u: step(u + " connected (prebind)",
                        lambda u=u: b.call("waitConnected", ms=30000, ctx=u, after=0))["jid"]
                for u in ("alice", "bob")}
        result["jids"] = jids
        hello = "hello bob, from alice's site login only " + secrets.token_hex(3)
        reply = "hi alice, same here " + secrets.token_hex(3)
        step("alice opens the chat with bob",
             lambda: b.call("openChat", ctx="alice", jid="bob@" + domain))
        step("alice sends", lambda: b.call("send", ctx="alice", jid="bob@" + domain, text=hello))
        step("bob opens the chat with alice",
             lambda: b.call("openChat", ctx="bob", jid="alice@" + domain))
        step("bob sees it", lambda: b.call("waitMessage", ctx="bob", jid="alice@" + domain,
                                           text=hello))
        step("bob replies", lambda: b.call("send", ctx="bob", jid="alice@" + domain, text=reply))
        step("alice sees the reply", lambda: b.call("waitMessage", ctx="alice",
                                                    jid="bob@" + domain, text=reply))
        for u in ("alice", "bob"):
            s = b.call("state", ctx=u)
            result.setdefault("sasl_auths", {})[u] = s["saslAuths"]
            result.setdefault("prebind_answers", {})[u] = [c for c, _ in s["prebindCalls"]]
        result["ok"] = all(v == 0 for v in result["sasl_auths"].values())
    except Exception as e:  # noqa: BLE001 - reported in the result
        result["error"] = str(e)
    finally:
        result["screenshots"] = [b.try_call("screenshot", ctx=u, name="demo-%s.png" % u)
                                 for u in ("alice", "bob")]
        b.close()
        result["seconds"] = round(time.monotonic() - t0, 2)
        print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
