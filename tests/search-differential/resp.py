"""A minimal, exact RESP2/RESP3 client for the differential test.

redis-py's parser turns simple strings and bulk strings into the same
`bytes`, and its response callbacks reshape replies per command; the
differential test compares reply *shapes*, so it reads the wire itself and
keeps every RESP type apart. Every read has a timeout (no unbounded wait).
"""

import socket


class Err:
    """An error reply (`-TEXT`)."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Err) and other.text == self.text

    def __hash__(self):
        return hash(("err", self.text))

    def __repr__(self):
        return f"Err({self.text!r})"


class Simple(str):
    """A simple string reply (`+OK`), distinct from a bulk string (bytes)."""

    def __repr__(self):
        return f"+{str.__repr__(self)}"


class Double(float):
    """A RESP3 double (`,1.5`)."""

    def __repr__(self):
        return f",{float.__repr__(self)}"


class Map(list):
    """A RESP3 map, kept as an ordered list of (key, value) pairs."""

    def __repr__(self):
        return "%{" + ", ".join(f"{k!r}: {v!r}" for k, v in self) + "}"


class SetReply(list):
    def __repr__(self):
        return "~" + list.__repr__(self)


class Closed(Exception):
    """The server closed the connection (or did not answer in time)."""


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, (int, float)):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, where, timeout_s=10.0):
        """`where`: a TCP port on 127.0.0.1, or a unix socket's path."""
        if isinstance(where, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout_s)
            self.sock.connect(where)
        else:
            self.sock = socket.create_connection(("127.0.0.1", where), timeout=timeout_s)
        self.sock.settimeout(timeout_s)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 16)
        except (socket.timeout, OSError) as e:
            raise Closed(str(e)) from e
        if not chunk:
            raise Closed("connection closed")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2 :]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return Simple(rest.decode("utf-8", "replace"))
        if t == b"-":
            return Err(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b",":
            return Double(float(rest))
        if t == b"_":
            return None
        if t == b"#":
            return rest == b"t"
        if t in (b"$", b"="):
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.read() for _ in range(n)]
            return SetReply(items) if t == b"~" else items
        if t == b"%" or t == b"|":
            n = int(rest)
            m = Map((self.read(), self.read()) for _ in range(n))
            return m
        if t == b"(":
            return int(rest)
        raise Closed(f"unknown RESP type {line[:40]!r}")

    def call(self, *args):
        self.sock.sendall(encode(args))
        return self.read()
