"""Free TCP ports on the loopback interface."""
import socket
import time

_handed_out = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (and not handed out before by this process)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def wait_for_port(port, host="127.0.0.1", timeout=15.0, alive=None) -> bool:
    """Wait until a TCP connection to host:port succeeds. `alive` is an optional callable that
    returns False when the process meant to listen has died (stop waiting early)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            pass
        if alive is not None and not alive():
            return False
        time.sleep(0.05)
    return False
