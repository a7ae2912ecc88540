"""A loopback HTTP/1.1 proxy that loses a share of the exchanges it carries (asyncio, stdlib only).

Placed between BOSH clients and Apache, it forwards each request verbatim on an upstream
keep-alive connection of its own (one per client connection) and, for a random share `rate` of
the exchanges (seeded RNG, one draw per exchange in arrival order), aborts it instead:

  drop_request   the request is read and never forwarded; the client connection is closed
                 (the gateway never saw it);
  drop_response  the request is forwarded, the whole response is read from upstream and thrown
                 away; the client connection is closed instead of delivering it (the gateway has
                 processed the request: only its replay cache can give the answer again);
  cut_in_flight  the request is forwarded and, 5-50 ms later, both connections are closed
                 (upstream: a TCP reset or an orderly close, half each) unless the answer came
                 first, in which case it is thrown away as in drop_response (a held request
                 whose client vanished: the gateway must keep the answer it gives later for
                 the re-send).

`weights` chooses between the kinds. An upstream that closes without answering (the gateway
abandons an early RID that way) is mirrored: the client connection is closed too, counted as
`upstream_closed`, not as an abort.

In a test:

    with LossyProxyProcess(upstream_port, rate=0.10, seed=4242) as proxy:   # own process
        ... clients use proxy.port ...
        stats = proxy.stats()          # {'exchanges':…, 'aborts': {'drop_request':…, …}, …}

or in an asyncio program: `p = LossyProxy(...); await p.start(); ...; await p.stop()`.
Command line (what LossyProxyProcess runs; prints {"port": N} then, on SIGTERM, the stats):

    python3 -m xbtest.lossy_proxy --upstream 127.0.0.1:8080 --rate 0.1 --seed 1

`GET /.lossy-proxy/stats` is answered by the proxy itself (JSON) and never forwarded or lost.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time

STATS_PATH = b"/.lossy-proxy/stats"
KINDS = ("drop_request", "drop_response", "cut_in_flight")
MAX_HEAD = 64 * 1024


class HttpClosed(Exception):
    """The peer closed (or broke) the connection before a whole message arrived."""


async def read_message(reader, is_response, request_method=b"POST"):
    """One HTTP/1.1 message: (start line, header dict with lower-case names, raw bytes of the
    whole message, close-after flag). Raises HttpClosed on EOF (None start line if nothing at all
    was read)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        raise HttpClosed(bool(e.partial)) from None
    except (asyncio.LimitOverrunError, ConnectionError, OSError) as e:
        raise HttpClosed(True) from e
    if len(head) > MAX_HEAD:
        raise HttpClosed(True)
    lines = head[:-4].split(b"\r\n")
    start = lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    version = start.split(b" ", 1)[0] if is_response else start.rsplit(b" ", 1)[-1]
    conn_tokens = [t.strip().lower() for t in headers.get(b"connection", b"").split(b",")]
    close = b"close" in conn_tokens or (version == b"HTTP/1.0" and b"keep-alive" not in conn_tokens)
    body = b""
    try:
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            parts = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                parts.append(size_line)
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:          # trailers up to the empty line
                        t = await reader.readuntil(b"\r\n")
                        parts.append(t)
                        if t == b"\r\n":
                            break
                    break
                parts.append(await reader.readexactly(size + 2))
            body = b"".join(parts)
        elif b"content-length" in headers:
            body = await reader.readexactly(int(headers[b"content-length"]))
        elif is_response:
            status = int(start.split(b" ", 2)[1])
            if request_method != b"HEAD" and status >= 200 and status not in (204, 304):
                body = await reader.read()        # delimited by the close
                close = True
    except asyncio.IncompleteReadError as e:
        raise HttpClosed(True) from e
    except (ValueError, ConnectionError, OSError) as e:
        raise HttpClosed(True) from e
    return start, headers, head + body, close


def _close(writer):
    if writer is None:
        return
    try:
        writer.close()
    except Exception:  # noqa: BLE001 - closing anyway
        pass


def _reset(writer):
    """Close with a TCP reset (SO_LINGER 0), as a browser tearing down a connection often does:
    the peer sees ECONNRESET at once rather than an orderly end of stream."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class LossyProxy:
    """LossyProxy(upstream_host, upstream_port, rate=0.10, seed=0, weights=None,
    listen_host='127.0.0.1', listen_port=0). After `await start()`: .port; .stats() (a dict)."""

    def __init__(self, upstream_host, upstream_port, rate=0.10, seed=0, weights=None,
                 listen_host="127.0.0.1", listen_port=0):
        self.upstream = (upstream_host, int(upstream_port))
        self.rate = float(rate)
        self.seed = seed
        self.weights = dict(weights or {"drop_request": 0.35, "drop_response": 0.45,
                                        "cut_in_flight": 0.2})
        unknown = set(self.weights) - set(KINDS)
        if unknown:
            raise ValueError("unknown abort kinds: %s" % sorted(unknown))
        self.rng = random.Random(seed)
        self.listen = (listen_host, listen_port)
        self.port = None
        self._server = None
        self._tasks = set()
        self.counts = {
            "client_connections": 0,
            "upstream_connections": 0,
            "exchanges": 0,          # requests read completely from clients
            "forwarded": 0,          # requests written upstream
            "delivered": 0,          # responses handed to the client
            "upstream_closed": 0,    # upstream closed without an answer: mirrored to the client
            "client_gone": 0,        # the client closed while its exchange was in progress
            "upstream_errors": 0,    # could not connect upstream
            "cut_after_answer": 0,   # cut_in_flight exchanges whose answer had come already
            "cut_reset": 0,          # cut_in_flight by a reset (the others: an orderly close)
        }
        self.aborts = {k: 0 for k in KINDS}
        self.started = None

    def stats(self):
        d = dict(self.counts)
        d["aborts"] = dict(self.aborts)
        d["aborted"] = sum(self.aborts.values())
        d["rate"] = self.rate
        d["seed"] = self.seed
        d["elapsed"] = round(time.monotonic() - self.started, 3) if self.started else 0.0
        return d

    def _decide(self):
        """None (deliver) or the abort kind for the next exchange."""
        if self.rng.random() >= self.rate:
            return None
        kinds = [k for k in KINDS if self.weights.get(k, 0) > 0]
        return self.rng.choices(kinds, [self.weights[k] for k in kinds])[0]

    async def start(self):
        self._server = await asyncio.start_server(self._client, self.listen[0], self.listen[1],
                                                  limit=MAX_HEAD * 2, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self.started = time.monotonic()
        return self

    async def stop(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, creader, cwriter):
        task = asyncio.current_task()
        self._tasks.add(task)
        self.counts["client_connections"] += 1
        ureader = uwriter = None
        try:
            while True:
                try:
                    start, _hdrs, raw, client_close = await read_message(creader, False)
                except HttpClosed:
                    return
                if start.split(b" ")[1:2] == [STATS_PATH]:
                    body = json.dumps(self.stats()).encode()
                    cwriter.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    await cwriter.drain()
                    continue
                self.counts["exchanges"] += 1
                fate = self._decide()
                if fate == "drop_request":
                    self.aborts[fate] += 1
                    return
                if uwriter is None or ureader.at_eof() or uwriter.is_closing():
                    _close(uwriter)
                    try:
                        ureader, uwriter = await asyncio.open_connection(
                            *self.upstream, limit=MAX_HEAD * 2)
                    except OSError:
                        self.counts["upstream_errors"] += 1
                        return
                    self.counts["upstream_connections"] += 1
                method = start.split(b" ", 1)[0]
                try:
                    uwriter.write(raw)
                    await uwriter.drain()
                    self.counts["forwarded"] += 1
                    if fate == "cut_in_flight":
                        self.aborts[fate] += 1
                        try:
                            await asyncio.wait_for(read_message(ureader, True, method),
                                                   self.rng.uniform(0.005, 0.05))
                            self.counts["cut_after_answer"] += 1
                        except asyncio.TimeoutError:
                            pass
                        if self.rng.random() < 0.5:
                            self.counts["cut_reset"] += 1
                            _reset(uwriter)
                        else:
                            uwriter.transport.abort()   # an orderly close (FIN)
                        _reset(cwriter)
                        return
                    _rstart, _rh, rraw, upstream_close = await read_message(ureader, True, method)
                except (HttpClosed, ConnectionError, OSError):
                    self.counts["upstream_closed"] += 1
                    return
                if fate == "drop_response":
                    self.aborts[fate] += 1
                    return
                try:
                    cwriter.write(rraw)
                    await cwriter.drain()
                except (ConnectionError, OSError):
                    self.counts["client_gone"] += 1
                    return
                self.counts["delivered"] += 1
                if upstream_close or client_close:
                    return
        except asyncio.CancelledError:
            pass
        finally:
            _close(uwriter)
            _close(cwriter)
            self._tasks.discard(task)


class LossyProxyProcess:
    """The proxy in a process of its own (so it does not share a core with the clients):
    LossyProxyProcess(upstream_port, rate=0.10, seed=0, weights=None, upstream_host='127.0.0.1')
    start()/stop() (by PID, bounded); .port, .pid, stats() (live, over HTTP), final_stats (after
    stop(): what the process printed when it ended)."""

    def __init__(self, upstream_port, rate=0.10, seed=0, weights=None,
                 upstream_host="127.0.0.1"):
        self.args = [sys.executable, "-m", "xbtest.lossy_proxy",
                     "--upstream", "%s:%d" % (upstream_host, upstream_port),
                     "--rate", str(rate), "--seed", str(seed)]
        if weights:
            self.args += ["--weights", json.dumps(weights)]
        self.proc = None
        self.port = None
        self.final_stats = None
        self.output = ""

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10.0):
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=here, env=env)
        deadline = time.monotonic() + timeout
        line = b""
        import select
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    break
                line += ch
        try:
            self.port = json.loads(line)["port"]
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise RuntimeError("lossy proxy did not start: %r" % line)
        return self

    def stats(self, timeout=10.0):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", STATS_PATH.decode())
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def stop(self, timeout=5.0):
        if self.proc is None:
            return self.final_stats
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate(timeout=5)
        self.output = out.decode(errors="replace")
        for line in reversed(self.output.splitlines()):
            try:
                self.final_stats = json.loads(line)
                break
            except ValueError:
                continue
        self.proc = None
        return self.final_stats

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--upstream", required=True, help="host:port of the HTTP server")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--rate", type=float, default=0.10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None, help='JSON, e.g. {"drop_request":1}')
    a = ap.parse_args(argv)
    uhost, uport = a.upstream.rsplit(":", 1)
    lhost, lport = a.listen.rsplit(":", 1)

    async def run():
        p = LossyProxy(uhost, int(uport), rate=a.rate, seed=a.seed,
                       weights=json.loads(a.weights) if a.weights else None,
                       listen_host=lhost, listen_port=int(lport))
        await p.start()
        print(json.dumps({"port": p.port}), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await p.stop()
        print(json.dumps(p.stats()), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
