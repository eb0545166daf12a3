#!/usr/bin/python3
"""A TLS 1.3 peer that asks for the client certificate only after the handshake.

usage: pha_server.py PORT CA.pem SERVER.pem SERVER.key

Listens on 127.0.0.1:PORT, one thread per connection, TLS 1.3 only. The handshake asks
for no certificate (post-handshake auth on, as Apache does for a protected location);
the client speaks lines:
  ping  -> "pong"
  who   -> the server sends a CertificateRequest (post-handshake auth), then "asked"
  cert  -> "cert CN=..." for the verified certificate the client gave since, or "cert none"
Each connection's outcome goes to stderr as one line ("pha: CN=...", "closed: ..."), so a
test can see which certificate reached the server. Runs until killed.
"""
import socket
import ssl
import sys
import threading


def subject_cn(cert):
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return "?"


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
    lsock = socket.create_server(("127.0.0.1", int(port)))
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
