#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A TLS server that records how each client ended its connection.

usage: close_watch.py PORT CA.pem SERVER.pem SERVER.key LOG

Listens on 127.0.0.1:PORT. Each connection (one thread each) must present a certificate
chaining to CA.pem. The client's first line is its tag; the server answers "ok TAG\\n" and
then reads (discarding) until the client ends the connection, and appends one line to LOG:

  TAG: close_notify, then eof     the client's close_notify (an orderly end); the server
  TAG: close_notify, then reset   then sent its own and saw how the TCP connection ended
  TAG: eof                        TCP FIN with no close_notify before it
  TAG: reset                      TCP reset with no close_notify before it

A connection that ends before its tag (wait_port's probes) logs nothing. Runs until killed.
"""
import ssl
import sys
import threading

sys.dont_write_bytecode = True  # nothing written next to the script (a read-only srcdir)
import biotls  # noqa: E402

lock = threading.Lock()


def record(log, line):
    with lock, open(log, "a") as f:
        f.write(line + "\n")


def serve(raw, ctx, log):
    raw.settimeout(20)
    conn = biotls.Conn(raw, ctx)
    try:
        conn.handshake()
        tag = conn.readline().decode(errors="replace").strip()
    except (OSError, ssl.SSLError, biotls.TcpEnd):
        raw.close()
        return
    if not tag:
        raw.close()
        return
    try:
        conn.write(b"ok " + tag.encode() + b"\n")
        while conn.read():
            pass
        # The client's close_notify: answer with ours, then see the TCP end.
        try:
            conn.close_notify()
            how = conn.wait_tcp_end()
        except OSError as e:
            how = "reset" if isinstance(e, ConnectionResetError) else str(e)
        record(log, "%s: close_notify, then %s" % (tag, how))
    except biotls.TcpEnd as e:
        record(log, "%s: %s" % (tag, e.how))
    except ConnectionResetError:
        record(log, "%s: reset" % tag)
    except (OSError, ssl.SSLError) as e:
        record(log, "%s: error %s" % (tag, e))
    finally:
        raw.close()


def main():
    port, ca, cert, key, log = sys.argv[1:6]
    ctx = biotls.server_context(ca, cert, key)
    lsock = biotls.listen(port)
    while True:
        raw, _ = lsock.accept()
        threading.Thread(target=serve, args=(raw, ctx, log), daemon=True).start()


if __name__ == "__main__":
    main()
