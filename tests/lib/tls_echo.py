#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A TLS echo peer that requires a client certificate and honours half-close.

usage: tls_echo.py PORT CA.pem SERVER.pem SERVER.key [BANNER]

Listens on 127.0.0.1:PORT. Each connection (one thread each) must present a certificate
chaining to CA.pem. Every byte received is sent back as it arrives; when the client's
close_notify comes, everything before it has been echoed, and only then does the server
send its own close_notify. stunnel's exec = /bin/cat does not promise that last part
under load (it may close before the tail of the echo is out), so tests that compare a
large stream end to end use this peer. With BANNER it speaks first: BANNER and a newline
go out as soon as the handshake is done, before anything is read. Runs until killed.
"""
import socket
import ssl
import sys
import threading


def serve(conn, banner):
    try:
        if banner is not None:
            conn.sendall(banner.encode() + b"\n")
        while True:
            data = conn.recv(65536)
            if not data:
                break  # the client's close_notify: all it sent has been echoed
            conn.sendall(data)
        conn.unwrap()
    except (OSError, ssl.SSLError) as e:
        print(f"tls_echo: {e}", file=sys.stderr, flush=True)
    finally:
        conn.close()


def main():
    port, ca, cert, key = sys.argv[1:5]
    banner = sys.argv[5] if len(sys.argv) > 5 else None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    lsock = socket.create_server(("127.0.0.1", int(port)))
    while True:
        raw, _ = lsock.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            print(f"tls_echo: handshake: {e}", file=sys.stderr, flush=True)
            raw.close()
            continue
        threading.Thread(target=serve, args=(conn, banner), daemon=True).start()


if __name__ == "__main__":
    main()
