# SPDX-License-Identifier: Apache-2.0
"""Server-side TLS over a raw socket through memory BIOs, for peers that must control
exactly what goes on the wire and see exactly how a connection ended.

ssl.SSLSocket decides some of that itself: its recv() turns an EOF without close_notify
into b'' (suppress_ragged_eofs), and Python's default contexts set OP_IGNORE_UNEXPECTED_EOF,
which makes OpenSSL report such an EOF as if it were a close_notify. Here every byte the
peer sends is one we wrote through the BIO, and the end of a connection is told apart:

  read() returns b''          the peer's close_notify
  read() raises TcpEnd('eof')   a TCP FIN with no close_notify before it
  read() raises TcpEnd('reset') a TCP reset with no close_notify before it

Used by unclean_server.py and close_watch.py; not a program of its own.
"""
import socket
import ssl


class TcpEnd(Exception):
    """The TCP connection ended ('eof' or 'reset') without a TLS close_notify."""

    def __init__(self, how):
        super().__init__(how)
        self.how = how


def server_context(ca, cert, key, max_version=None):
    """Mutual TLS: the client must present a certificate chaining to CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    # An EOF without close_notify must stay an error, not pass for a close_notify.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if max_version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif max_version == "1.3":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    elif max_version is not None:
        raise ValueError("max version is 1.2 or 1.3, not %r" % max_version)
    return ctx


class Conn:
    def __init__(self, sock, ctx):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_side=True)
        self.tcp_end = None  # 'eof' or 'reset' once the socket said so

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        """More bytes from the socket into the BIO; False at the TCP end."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self.tcp_end = "reset"
            return False
        if not data:
            self.tcp_end = "eof"
            return False
        self.inc.write(data)
        return True

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                self._flush()  # the last flight, and TLS 1.3 session tickets
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise TcpEnd(self.tcp_end)

    def read(self, n=65536):
        """Application data; b'' for a close_notify; TcpEnd for an unclean end."""
        while True:
            try:
                return self.tls.read(n)
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise TcpEnd(self.tcp_end)

    def readline(self, limit=4096):
        """Up to and with the first newline; what came before the end if there is none
        (b'' then means close_notify before any byte)."""
        buf = b""
        while b"\n" not in buf and len(buf) < limit:
            data = self.read(limit - len(buf))
            if not data:
                break
            buf += data
        return buf

    def write(self, data):
        self.tls.write(data)
        self._flush()

    def close_notify(self):
        """Sends our close_notify (without waiting for the peer's)."""
        try:
            self.tls.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        self._flush()

    def wait_tcp_end(self):
        """Reads the socket to its end, discarding; 'eof' or 'reset'."""
        while self.tcp_end is None:
            self._fill()
        return self.tcp_end

    def drain(self):
        """Reads what already waits in the socket without blocking, so that a close()
        sends a FIN: with unread bytes in its receive buffer the kernel resets instead."""
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            while self.sock.recv(65536):
                pass
        except (BlockingIOError, ConnectionResetError):
            pass
        finally:
            self.sock.settimeout(timeout)


def listen(port):
    return socket.create_server(("127.0.0.1", int(port)))
