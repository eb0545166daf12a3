# SPDX-License-Identifier: Apache-2.0
"""burst.py PORT N NAME [STOP]: rounds of N connections at once to 127.0.0.1:PORT, each one
HTTP/1.0 request, until the file STOP exists (one round without it); counts the answers
that carry "hello CN=NAME" (a prefix of the device's name) and prints what the others got.
The tunnel tests' cold bursts."""
import os, socket, sys, threading
port, n, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
stop = sys.argv[4] if len(sys.argv) > 4 else None
ok, bad = [], []
def one():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        if b"hello CN=" + name in data:
            ok.append(1)
        else:
            bad.append(data[-80:])
    except OSError as e:
        bad.append(repr(e).encode())
rounds = 0
while rounds == 0 or (stop is not None and not os.path.exists(stop)):
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rounds += 1
print("%d of %d answered as %s in %d rounds" % (len(ok), rounds * n, name.decode(), rounds))
for b in bad[:5]:
    print("other answer: %r" % b)
