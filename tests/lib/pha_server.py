#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A TLS 1.3 peer that asks for the client certificate only after the handshake.

usage: pha_server.py PORT CA.pem SERVER.pem SERVER.key

Listens on 127.0.0.1:PORT, one thread per connection, TLS 1.3 only. The handshake asks
for no certificate (post-handshake auth on, as Apache does for a protected location);
the client speaks lines:
  ping  -> "pong"
  who   -> the server sends a CertificateRequest (post-handshake auth), then "asked"
  late  -> as "who", half a second later (the client may have ended its side by then)
  cert  -> "cert CN=..." for the verified certificate the client gave since, or "cert none"
  sink  -> the server stops reading for a second (so that the client's sends back up),
           asks for the certificate as for "who", waits another second, then reads to the
           end of the stream and
           answers "sink BYTES SHA256 CN=..." (or "CN=none") for all it read after the line
Each connection's outcome goes to stderr as one line ("pha: CN=...", "closed: ..."), so a
test can see which certificate reached the server. Runs until killed.
"""
import hashlib
import socket
import ssl
import sys
import threading
import time


def subject_cn(cert):
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return "?"


def sink(conn, f, n):
    time.sleep(1)
    conn.verify_client_post_handshake()
    conn.sendall(b"asked\n")
    time.sleep(1)  # the request arrives while the client's sends are still backed up
    digest, total = hashlib.sha256(), 0
    while True:
        data = f.read(65536)
        if not data:
            break
        digest.update(data)
        total += len(data)
    cert = conn.getpeercert()
    who = f"CN={subject_cn(cert)}" if cert else "CN=none"
    print(f"conn {n}: sink: {total} {digest.hexdigest()} {who}", file=sys.stderr, flush=True)
    conn.sendall(f"sink {total} {digest.hexdigest()} {who}\n".encode())


def serve(conn, n):
    try:
        f = conn.makefile("rwb", buffering=0)
        for line in f:
            cmd = line.strip()
            if cmd == b"ping":
                conn.sendall(b"pong\n")
            elif cmd == b"who":
                conn.verify_client_post_handshake()
                conn.sendall(b"asked\n")
            elif cmd == b"late":
                time.sleep(0.5)
                conn.verify_client_post_handshake()
                conn.sendall(b"asked\n")
            elif cmd == b"sink":
                sink(conn, f, n)
                break
            elif cmd == b"cert":
                cert = conn.getpeercert()
                answer = f"CN={subject_cn(cert)}" if cert else "none"
                print(f"conn {n}: pha: {answer}", file=sys.stderr, flush=True)
                conn.sendall(f"cert {answer}\n".encode())
        print(f"conn {n}: closed: end of stream", file=sys.stderr, flush=True)
        conn.unwrap()  # our close_notify: the client may take the stream for complete
    except (OSError, ssl.SSLError) as e:
        print(f"conn {n}: closed: {e}", file=sys.stderr, flush=True)
    finally:
        conn.close()


def main():
    port, ca, cert, key = sys.argv[1:5]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.post_handshake_auth = True
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    # A small receive window (set before listen, so connections inherit it): a client that
    # sends more than the server reads backs up at once, whatever the host's TCP tuning.
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    lsock.bind(("127.0.0.1", int(port)))
    lsock.listen(64)
    n = 0
    while True:
        raw, _ = lsock.accept()
        n += 1
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            print(f"conn {n}: handshake: {e}", file=sys.stderr, flush=True)
            raw.close()
            continue
        threading.Thread(target=serve, args=(conn, n), daemon=True).start()


if __name__ == "__main__":
    main()
