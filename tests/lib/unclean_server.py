#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A TLS server that answers and then ends the TCP connection without a TLS close.

usage: unclean_server.py PORT CA.pem SERVER.pem SERVER.key [--max-tls 1.2|1.3]
                         [--bytes N] [--cork] [--reset] [--flush] [--half]

Listens on 127.0.0.1:PORT. Each connection (one thread each) must present a certificate
chaining to CA.pem. The server reads one line (the request), sends exactly N bytes (94 by
default; one TLS record up to 16 KiB), and closes the TCP socket: no close_notify is ever sent, since
every byte on the wire goes through a memory BIO that is never shut down. The close is a
FIN (what came before it was read, so the kernel does not turn it into a reset), or with
--reset a TCP reset (SO_LINGER 0).

--cork holds the reply back (TCP_CORK) until the close, so that the record and the FIN
leave in one segment: a client that reads the record finds the end right behind it, every
time. That is the worst case for a client that drops what it read when it meets the end.
Without --cork the FIN trails the record a little, or leaves with it when Nagle holds the
record behind an unacknowledged session ticket, as from most servers.

--flush waits until the kernel has sent the whole reply before the close, so that the FIN
or reset leaves right after it; --reset implies it (a reset discards what was not sent).

--half ends only the sending side (a FIN), waits half a second, then reads and discards
whatever the client still sends, until it closes: a server that cut its answer but still
takes an upload.

--max-tls caps the protocol version. One line per connection goes to stdout, once the
socket is closed: the request size and how the connection ended ("... without
close_notify"), or why it failed (wait_port's probes end in the handshake). A client that
waits for that line knows the end has left the server. Runs until killed.
"""
import argparse
import fcntl
import socket
import ssl
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # nothing written next to the script (a read-only srcdir)
import biotls  # noqa: E402

SIOCOUTQNSD = 0x894B  # bytes in the send queue not sent yet (linux/sockios.h)


def sent_all(raw):
    """Until the kernel has sent everything written (10 s at most)."""
    for _ in range(1000):
        if struct.unpack("i", fcntl.ioctl(raw.fileno(), SIOCOUTQNSD, b"\0" * 4))[0] == 0:
            return
        time.sleep(0.01)


def serve(raw, ctx, args):
    raw.settimeout(20)
    flush = args.flush or args.reset
    if flush:
        # Small writes go out at once: Nagle would hold the reply back behind an
        # unacknowledged session ticket.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = biotls.Conn(raw, ctx)
    try:
        conn.handshake()
        req = conn.readline()
        if args.cork:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        conn.write(b"r" * (args.bytes - 1) + b"\n" if args.bytes else b"")
        conn.drain()
        if flush:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            sent_all(raw)
        if args.reset:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if args.half:
            raw.shutdown(socket.SHUT_WR)
            # Not reading for a while first: the client's upload backs up behind the end.
            time.sleep(0.5)
            while raw.recv(65536):
                pass
    except (OSError, ssl.SSLError, biotls.TcpEnd) as e:
        print("unclean_server: %s" % (e,), flush=True)
        raw.close()
        return
    raw.close()
    print("request of %d bytes; sent %d, then %s without close_notify"
          % (len(req), args.bytes, "reset" if args.reset else "FIN"), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port")
    ap.add_argument("ca")
    ap.add_argument("cert")
    ap.add_argument("key")
    ap.add_argument("--max-tls", choices=["1.2", "1.3"])
    ap.add_argument("--bytes", type=int, default=94)
    ap.add_argument("--cork", action="store_true")
    ap.add_argument("--reset", action="store_true")
    ap.add_argument("--flush", action="store_true")
    ap.add_argument("--half", action="store_true")
    args = ap.parse_args()
    ctx = biotls.server_context(args.ca, args.cert, args.key, args.max_tls)
    lsock = biotls.listen(args.port)
    while True:
        raw, _ = lsock.accept()
        threading.Thread(target=serve, args=(raw, ctx, args), daemon=True).start()


if __name__ == "__main__":
    main()
