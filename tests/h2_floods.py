"""HTTP/2 floods against an h2c listener, crafted with Python's h2/hyperframe/hpack.

    python3 tests/h2_floods.py PORT ATTACK

ATTACK: rapid_reset | continuation | settings | window_update. Each sends at most a bounded
number of frames for at most 10 seconds, stops early when the server closes the connection,
and prints one line: `ATTACK frames=N closed_by_server=BOOL seconds=S`. Run by
tests/h2_floods.rs, which checks that tidegate keeps serving others meanwhile and that its
memory stays bounded.
"""

import socket
import sys
import time

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_SECONDS = 10.0
START = time.time()


def expired():
    return time.time() - START > MAX_SECONDS


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(PREFACE + SettingsFrame(0).serialize())
    s.setblocking(False)
    return s


def drain(s):
    """Read what the server sent; False when it closed the connection."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return False
    except BlockingIOError:
        return True
    except (ConnectionResetError, BrokenPipeError):
        return False


def send(s, data):
    """Send all of data; False when the server closed the connection."""
    view = memoryview(data)
    deadline = time.time() + 2
    while view:
        try:
            n = s.send(view)
            view = view[n:]
        except BlockingIOError:
            if not drain(s) or time.time() > deadline:
                return False
            time.sleep(0.001)
        except (ConnectionResetError, BrokenPipeError):
            return False
    return True


def request_block(encoder, stream_id):
    return encoder.encode(
        [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/flood/%d" % stream_id),
            (":authority", "h"),
        ]
    )


def rapid_reset(s, limit=20000):
    enc = hpack.Encoder()
    sent = 0
    for i in range(limit):
        sid = 1 + 2 * i
        h = HeadersFrame(sid, request_block(enc, sid))
        h.flags.add("END_HEADERS")
        h.flags.add("END_STREAM")
        r = RstStreamFrame(sid)
        r.error_code = 8  # CANCEL
        if not send(s, h.serialize() + r.serialize()):
            return sent, True
        sent += 2
        if expired():
            break
        if i % 100 == 0 and not drain(s):
            return sent, True
    return sent, not drain(s)


def continuation(s, limit=5000):
    enc = hpack.Encoder()
    h = HeadersFrame(1, request_block(enc, 1))  # no END_HEADERS: CONTINUATION must follow
    if not send(s, h.serialize()):
        return 0, True
    junk = enc.encode([("x-junk-%d" % i, "v" * 100) for i in range(100)])
    sent = 1
    for i in range(limit):
        c = ContinuationFrame(1, junk)
        if not send(s, c.serialize()):
            return sent, True
        sent += 1
        if expired():
            break
        if i % 50 == 0 and not drain(s):
            return sent, True
    return sent, not drain(s)


def repeat(s, frame, limit=100000):
    """Send the same frame over and over."""
    sent = 0
    for i in range(limit):
        if expired():
            break
        if not send(s, frame):
            return sent, True
        sent += 1
        if i % 500 == 0 and not drain(s):
            return sent, True
    return sent, not drain(s)


def settings(s):
    frame = SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100})
    return repeat(s, frame.serialize())


def window_update(s):
    return repeat(s, WindowUpdateFrame(0, window_increment=1).serialize())


ATTACKS = {
    "rapid_reset": rapid_reset,
    "continuation": continuation,
    "settings": settings,
    "window_update": window_update,
}


def main():
    port, name = int(sys.argv[1]), sys.argv[2]
    start = time.time()
    s = connect(port)
    frames, closed = ATTACKS[name](s)
    s.close()
    print(
        "%s frames=%d closed_by_server=%s seconds=%.2f"
        % (name, frames, closed, time.time() - start)
    )


if __name__ == "__main__":
    main()
