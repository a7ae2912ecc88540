"""A fake XMPP server on loopback, for the faults a real server will not produce on demand.

    f = FakeXmpp('garbage', 'garbage.test')          # or tls_cert=(cert, key) for STARTTLS
    f.start()                                        # f.port
    ... XmppBridgeDomain garbage.test 127.0.0.1:<f.port> plain ...
    f.wait_connections(1, timeout=10); f.connections[0].received  (bytes from the module)
    f.stop()

Scenarios (what the fake does with each connection it accepts):
  stall          accepts and never writes (the TCP connect works, nothing else)
  no_features    answers the stream header, never sends <stream:features/>
  garbage        answers with bytes that are not XML (an HTTP error page)
  open           header + features (SASL PLAIN; STARTTLS first when tls_cert is given), then
                 waits for the client's first stanza and does `after_open`:
                   'oversized'   a <message/> of `oversize` bytes
                   'stream_error' <stream:error><conflict/><text/></stream:error> and closes
                   'mid_stanza'  half a <message/>, then closes the TCP connection
                   'echo'        nothing (the session stays open)
  no_starttls    STARTTLS domain whose server offers no STARTTLS (a downgrade attempt): features
                 with SASL PLAIN only, then records whatever comes.

With tls_cert=(cert_path, key_path) the `open` scenario offers <starttls/> (required),
answers <proceed/>, and runs the TLS handshake with that certificate; .tls_ok / .tls_error of
each connection say how it went, .tls_resumed whether the client resumed a TLS session. One
server context serves all of a fake's connections (its session tickets stay valid, as with a
real server); tls_context=<ssl.SSLContext> shares one between fakes (and its certificate:
tls_cert is then only the switch for STARTTLS), as one server process holding several names. Everything is bounded in time; stop() closes every socket.
"""
import socket
import ssl
import threading
import time

from .ports import free_port

NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"

STREAM_ERROR = ("<stream:error><conflict xmlns='%s'/><text xmlns='%s'>Replaced by new "
                "connection</text></stream:error>" % (NS_STREAMS_ERR, NS_STREAMS_ERR))
GARBAGE = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n"
           b"<html><body>400 & bad</body>\x01\x02 \xc3\x28</html>\r\n")


def server_context(tls_cert):
    """A TLS server context with the certificate (cert_path, key_path)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls_cert)
    return ctx


class FakeConnection:
    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr
        self.received = b""      # everything the module sent (plaintext after TLS)
        self.tls_ok = False
        self.tls_resumed = False
        self.tls_error = None
        self.closed = False


class FakeXmpp:
    def __init__(self, scenario, domain, tls_cert=None, after_open="echo", oversize=100000,
                 timeout=30.0, tls_context=None):
        self.scenario = scenario
        self.domain = domain
        self.tls_cert = tls_cert
        self.tls_context = tls_context
        self.after_open = after_open
        self.oversize = oversize
        self.timeout = timeout
        self.port = free_port()
        self.connections = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._listener = None

    # ------------------------------------------------------------------ control
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        s.settimeout(0.2)
        self._listener = s
        t = threading.Thread(target=self._accept_loop, name="fake-xmpp-%s" % self.domain,
                             daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        with self._lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.sock.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def wait_connections(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.connections) >= n:
                    return True
            time.sleep(0.05)
        return False

    def all_received(self):
        with self._lock:
            return b"".join(c.received for c in self.connections)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ server side
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(0.2)
            c = FakeConnection(sock, addr)
            with self._lock:
                self.connections.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _recv_until(self, c, needle, timeout=None):
        """Reads until `needle` (bytes) is in what came since the last call's mark; returns
        False on timeout, EOF or stop."""
        deadline = time.monotonic() + (timeout or self.timeout)
        start = c.mark if hasattr(c, "mark") else 0
        while needle not in c.received[start:]:
            if self._stop.is_set() or time.monotonic() > deadline:
                return False
            try:
                data = c.sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                return False
            if not data:
                return False
            c.received += data
        c.mark = c.received.index(needle, start) + len(needle)
        return True

    def _recv_header(self, c):
        # the module writes its header in one go: "<stream:stream ...>"
        if not self._recv_until(c, b"<stream:stream"):
            return False
        return self._recv_until(c, b">")

    def _send(self, c, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            c.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError):
            return False

    def _header(self, n):
        return ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
                "from='%s' id='fake-%d' version='1.0' xml:lang='en'>" % (NS_STREAM, self.domain,
                                                                         n))

    def _idle(self, c):
        """Keeps reading (and recording) until the peer or the test ends."""
        deadline = time.monotonic() + self.timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data = c.sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            c.received += data

    def _serve(self, c):
        try:
            getattr(self, "_scenario_" + self.scenario)(c)
        finally:
            c.closed = True
            try:
                c.sock.close()
            except OSError:
                pass

    def _scenario_stall(self, c):
        self._idle(c)

    def _scenario_no_features(self, c):
        if self._recv_header(c):
            self._send(c, self._header(1))
            self._idle(c)

    def _scenario_garbage(self, c):
        if self._recv_header(c):
            self._send(c, GARBAGE)
            self._idle(c)

    def _scenario_no_starttls(self, c):
        if self._recv_header(c):
            self._send(c, self._header(1) + "<stream:features><mechanisms xmlns='%s'>"
                       "<mechanism>PLAIN</mechanism></mechanisms></stream:features>" % NS_SASL)
            self._idle(c)

    def _scenario_open(self, c):
        if not self._recv_header(c):
            return
        if self.tls_cert:
            self._send(c, self._header(1) + "<stream:features><starttls xmlns='%s'><required/>"
                       "</starttls></stream:features>" % NS_TLS)
            if not self._recv_until(c, b"<starttls"):
                return
            self._recv_until(c, b">")
            self._send(c, "<proceed xmlns='%s'/>" % NS_TLS)
            with self._lock:
                if self.tls_context is None:
                    self.tls_context = server_context(self.tls_cert)
                ctx = self.tls_context
            c.sock.settimeout(10)
            try:
                c.sock = ctx.wrap_socket(c.sock, server_side=True)
                c.tls_ok = True
                c.tls_resumed = c.sock.session_reused
            except (ssl.SSLError, OSError) as e:
                c.tls_error = repr(e)
                return
            c.sock.settimeout(0.2)
            c.mark = 0
            c.received = b""
            if not self._recv_header(c):
                return
        self._send(c, self._header(2) + "<stream:features><mechanisms xmlns='%s'>"
                   "<mechanism>PLAIN</mechanism></mechanisms></stream:features>" % NS_SASL)
        # the client's first stanza triggers the fault (so the test decides when)
        if not self._recv_until(c, b">", timeout=self.timeout):
            return
        if self.after_open == "oversized":
            self._send(c, "<message xmlns='jabber:client' from='big@%s'><body>%s</body></message>"
                       % (self.domain, "x" * self.oversize))
            self._idle(c)
        elif self.after_open == "stream_error":
            self._send(c, STREAM_ERROR + "</stream:stream>")
            self._recv_until(c, b"</stream:stream>", timeout=3)
        elif self.after_open == "mid_stanza":
            self._send(c, "<message xmlns='jabber:client' from='half@%s'><body>half a mess"
                       % self.domain)
            time.sleep(0.2)
        else:
            self._idle(c)

