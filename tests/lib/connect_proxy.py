# SPDX-License-Identifier: Apache-2.0
# An HTTP CONNECT proxy for the tests: connect_proxy.py PORT LOG MODE. Each CONNECT line is
# appended to LOG; MODE "allow" relays the connection, "deny" answers 407. It listens on
# 127.0.0.1 only and relays only to what a test asks for.
import socket, sys, threading
port, log, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(c):
    req = b""
    while b"\r\n\r\n" not in req:
        d = c.recv(1)
        if not d:
            return c.close()
        req += d
    line = req.split(b"\r\n")[0].decode()
    open(log, "a").write(line + "\n")
    if mode == "deny":
        c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
        return c.close()
    host, p = line.split()[1].rsplit(":", 1)
    u = socket.create_connection((host, int(p)))
    c.sendall(b"HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\n")
    threading.Thread(target=pipe, args=(c, u)).start()
    pipe(u, c)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,)).start()
