#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A strict EST (RFC 7030, with the RFC 8951 clarifications) server for keybound's tests.

usage: est_server.py --port P --ca-cert CA.pem --ca-key CA.key
                     --tls-cert SERVER.pem --tls-key SERVER.key
                     --secret USER:PASSWORD --state DIR [--days N]

Listens for HTTPS (TLS 1.2 or newer, HTTP/1.1 with keep-alive) on 127.0.0.1:P only;
--port 0 lets the kernel choose. A client certificate is requested but optional; one that
is presented must chain to CA.pem or the TLS handshake fails. Runs until SIGTERM or
SIGINT, then exits with status 0.

The state directory DIR:
  DIR/ready         written (atomically) once the server listens; holds the port and a
                    newline. Removed at start and at exit.
  DIR/mode          read on every request (missing = empty; whitespace stripped): the
                    fault mode, so a test can change the behaviour between requests.
  DIR/requests.log  one line appended per request, written before the reply is sent:
                      METHOD PATH STATUS auth=cert|basic|none[ subject=RFC4514 csr=H key=H]
                    auth is "cert" when the TLS connection carried a verified client
                    certificate, else "basic" when an Authorization: Basic header came,
                    else "none". subject= is added for enrol requests whose CSR parsed,
                    with csr= the SHA-256 (hex) of the CSR's DER and key= that of its
                    SubjectPublicKeyInfo: a client that asks again after a 202 (RFC 7030
                    4.2.3) sends the same csr=, a new key shows as a new key=.

Endpoints, all under /.well-known/est/ (any other method or path: 404):
  GET cacerts        200, Content-Type: application/pkcs7-mime,
                     Content-Transfer-Encoding: base64; body: base64 of a DER PKCS#7
                     certs-only holding CA.pem, 64 columns, LF line ends.
  GET csrattrs       200, Content-Type: application/csrattrs,
                     Content-Transfer-Encoding: base64; body: base64 (LF) of
                     SEQUENCE { OID ecdsa-with-SHA256, OID macAddress,
                                SEQUENCE { OID extensionRequest, SET { OID clientAuth } } }
  POST simpleenroll  needs Authorization: Basic equal to --secret.
                     none (or another scheme) -> 401 "enrolment secret required";
                     wrong -> 401 "enrolment secret rejected for user USER".
                     Both carry WWW-Authenticate: Basic realm="estrealm" (RFC 7235 makes
                     it mandatory on every 401 of an HTTP authentication scheme).
  POST simplereenroll needs a verified TLS client certificate (no Basic auth), else
                     401 "client certificate required" (no WWW-Authenticate: no HTTP
                     scheme would help). The CSR subject must equal the certificate's
                     subject, else 400 "subject does not match the current certificate".
  For both enrol endpoints, in this order after authentication:
    Content-Type other than application/pkcs10 -> 415 "expected Content-Type
    application/pkcs10"; base64 (whitespace allowed) that does not decode -> 400 "CSR is
    not valid base64"; not DER PKCS#10 -> 400 "CSR is not a DER PKCS#10 request"; bad
    signature -> 400 "CSR signature does not verify"; unusable key or extensions -> 400.
    Then the fault mode, then issuance: subject and subjectAltName (if any) from the CSR,
    BasicConstraints CA:false and KeyUsage digitalSignature (critical), ExtendedKeyUsage
    clientAuth, subject/authority key identifiers, random serial, valid from now-1min to
    now+N days (--days, default 30), signed with SHA-256 by CA.key (Ed25519/Ed448: pure).
    Reply 200, Content-Type: application/pkcs7-mime; smime-type=certs-only,
    Content-Transfer-Encoding: base64; body: base64 (64 columns, LF) of a DER PKCS#7
    certs-only holding only the issued certificate.
Before any of this, on any request: a body (Content-Length or chunked) over 64 KiB ->
413, malformed body framing -> 400; both close the connection. A request with neither
Content-Length nor chunking has an empty body (RFC 9112), which an enrol rejects as 400.
All error bodies are text/plain; charset=utf-8, one line ending in LF.

Fault modes (the contents of DIR/mode); they act on enrol replies after the request has
been authenticated and its CSR validated; "(+ cacerts)" marks those that also act on
GET cacerts:
  (empty)            normal.
  retry-after N K    the first K enrol requests get 202, Retry-After: N, empty body;
                     later ones are normal. Counted per distinct mode string, in memory.
  retry-date N K     the same, Retry-After being the HTTP-date N seconds ahead.
  retry-forever N    every enrol request gets 202, Retry-After: N.
  bad-base64         200, correct headers, body "!!!not base64!!!".       (+ cacerts)
  wrong-content-type 200, Content-Type: text/html, valid body.            (+ cacerts)
  truncated-pkcs7    200, base64 of the first half of the DER PKCS#7.     (+ cacerts)
  other-key          200, valid PKCS#7 whose certificate (same subject) is for a freshly
                     generated P-256 key instead of the CSR's key.
  empty-pkcs7        200, a certs-only PKCS#7 with an empty certificate set.
  nowrap             normal, but the base64 is one line with no line end.
  crlf               normal, but the base64 lines end in CRLF.            (+ cacerts)
  server-error       500 "CA backend unavailable".                        (+ cacerts)
  reject             403 "request rejected by policy: device not registered".
  no-csrattrs        GET csrattrs -> 204 No Content; enrol replies are normal.
  huge               200, correct headers, a 6 MiB base64 body.                (+ cacerts)
  retry-malformed    every enrol request gets 202, Retry-After: -5.
  short-lived        normal, but the certificate is valid for 30 minutes only.
  chunked            normal, but sent with Transfer-Encoding: chunked in 7-byte chunks
                     (+ cacerts)
  close-delimited    normal, but with neither Content-Length nor chunking: the body ends
                     when the server closes the connection (with close_notify). (+ cacerts)
  close-delimited-cut the same, but the TCP connection ends without close_notify.
                                                                              (+ cacerts)
Any other mode text makes every request fail with 500 "est_server: unusable mode ...",
so that a typo in a test cannot pass for normal behaviour.
"""
import argparse
import base64
import binascii
import datetime
import email.utils
import hashlib
import hmac
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID

PREFIX = "/.well-known/est/"
BASIC_CHALLENGE = 'Basic realm="estrealm"'
MAX_BODY = 64 * 1024
IO_TIMEOUT = 30
ENROLL_TYPE = "application/pkcs7-mime; smime-type=certs-only"
CACERTS_TYPE = "application/pkcs7-mime"
CACERTS_MODES = {"bad-base64", "wrong-content-type", "truncated-pkcs7", "server-error",
                 "crlf", "huge", "chunked", "close-delimited", "close-delimited-cut"}
FRAMING_MODES = {"chunked", "close-delimited", "close-delimited-cut"}
MODE_ARITY = {
    "": 0, "no-csrattrs": 0, "retry-after": 2, "retry-date": 2, "retry-forever": 1,
    "bad-base64": 0, "wrong-content-type": 0, "truncated-pkcs7": 0, "other-key": 0,
    "empty-pkcs7": 0, "nowrap": 0, "crlf": 0, "server-error": 0, "reject": 0,
    "huge": 0, "retry-malformed": 0, "chunked": 0, "close-delimited": 0, "short-lived": 0,
    "close-delimited-cut": 0,
}


# ---- DER, hand-encoded where cryptography offers no encoder ----

def der_tlv(tag, content):
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return bytes([tag]) + length + content


def der_oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1]] + arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return der_tlv(0x06, bytes(out))


def der_seq(*items):
    return der_tlv(0x30, b"".join(items))


def der_set(*items):
    return der_tlv(0x31, b"".join(items))


def csrattrs_der():
    return der_seq(
        der_oid("1.2.840.10045.4.3.2"),
        der_oid("1.3.6.1.1.1.1.22"),
        der_seq(der_oid("1.2.840.113549.1.9.14"), der_set(der_oid("1.3.6.1.5.5.7.3.2"))),
    )


def certs_only_der(certs):
    if certs:
        return pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
    # cryptography refuses an empty list, so the degenerate SignedData is built by hand:
    # version 1, no digest algorithms, eContentType data, certificates [0] empty, no signers.
    signed_data = der_seq(
        der_tlv(0x02, b"\x01"),
        der_set(),
        der_seq(der_oid("1.2.840.113549.1.7.1")),
        der_tlv(0xA0, b""),
        der_set(),
    )
    return der_seq(der_oid("1.2.840.113549.1.7.2"), der_tlv(0xA0, signed_data))


# ---- base64 bodies ----

def b64_lines(der, eol):
    """Base64 in 64-column lines, each ending in eol; eol "" gives one unbroken line."""
    text = base64.b64encode(der)
    if not eol:
        return text
    eol = eol.encode()
    return b"".join(text[i:i + 64] + eol for i in range(0, len(text), 64))


def b64_decode_body(body):
    # RFC 8951: the body is base64 whatever Content-Transfer-Encoding says, and may be
    # wrapped with CRLF or LF.
    return base64.b64decode(b"".join(body.split()), validate=True)


# ---- replies ----

class Reply:
    def __init__(self, status, body=b"", headers=()):
        self.status, self.body, self.headers = status, body, list(headers)


def text_reply(status, text, headers=()):
    return Reply(status, (text + "\n").encode(),
                 [("Content-Type", "text/plain; charset=utf-8")] + list(headers))


def pkcs7_reply(der, content_type, fault):
    """The 200 carrying a certs-only PKCS#7, spoiled as the fault mode asks."""
    eol = {"nowrap": "", "crlf": "\r\n"}.get(fault, "\n")
    if fault == "truncated-pkcs7":
        der = der[:len(der) // 2]
    if fault == "bad-base64":
        body = b"!!!not base64!!!\n"
    elif fault == "huge":
        body = (b"A" * 76 + b"\n") * (6 * 1024 * 1024 // 77)
    else:
        body = b64_lines(der, eol)
    if fault == "wrong-content-type":
        content_type = "text/html"
    return Reply(200, body, [("Content-Type", content_type),
                             ("Content-Transfer-Encoding", "base64")])


def retry_reply(name, seconds):
    if name == "retry-date":
        value = email.utils.formatdate(time.time() + seconds, usegmt=True)
    else:
        value = str(seconds)
    return Reply(202, b"", [("Retry-After", value)])


# ---- fault mode ----

def parse_mode(text):
    """(name, integer arguments) of a mode text; ValueError when it is not a known mode."""
    parts = text.split()
    name, args = (parts[0], parts[1:]) if parts else ("", [])
    if MODE_ARITY.get(name) != len(args) or not all(a.isdigit() for a in args):
        raise ValueError(text)
    return name, [int(a) for a in args]


class RetryCounter:
    """How many enrol requests each retry mode string has answered, so the K-th is the last
    202 even when a test switches modes back and forth."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = {}

    def due(self, mode_text, name, args):
        if name == "retry-forever":
            return True
        if name not in ("retry-after", "retry-date"):
            return False
        with self.lock:
            self.seen[mode_text] = self.seen.get(mode_text, 0) + 1
            return self.seen[mode_text] <= args[1]


# ---- the CA ----

class Ca:
    def __init__(self, cert_path, key_path, days):
        with open(cert_path, "rb") as f:
            self.cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        self.days = days
        # Pure EdDSA signs without a separate digest; cryptography wants None for it.
        eddsa = (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
        self.digest = None if isinstance(self.key, eddsa) else hashes.SHA256()
        self.aki = self._authority_key_id()

    def _authority_key_id(self):
        # Copying the CA's own SKI (rather than recomputing it) keeps the chain linkable
        # whichever method made the CA's identifier.
        try:
            ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def issue(self, csr, public_key, lifetime=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        lifetime = lifetime or datetime.timedelta(days=self.days)
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(self.aki, False)
        )
        san = csr_san(csr)
        if san is not None:
            builder = builder.add_extension(san.value, san.critical)
        return builder.sign(self.key, self.digest)


def csr_san(csr):
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None


# ---- the state directory ----

class StateDir:
    def __init__(self, path):
        self.path = path
        self.log_lock = threading.Lock()

    def _file(self, name):
        return os.path.join(self.path, name)

    def mode(self):
        try:
            with open(self._file("mode"), encoding="utf-8") as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def log(self, line):
        with self.log_lock, open(self._file("requests.log"), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def write_ready(self, port):
        # Renamed into place so a test polling for the file never reads it half written.
        tmp = self._file("ready.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(tmp, self._file("ready"))

    def remove_ready(self):
        try:
            os.unlink(self._file("ready"))
        except FileNotFoundError:
            pass


# ---- HTTP ----

class BodyError(Exception):
    def __init__(self, status, text):
        super().__init__(text)
        self.status, self.text = status, text


class EstHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "est_server"
    timeout = IO_TIMEOUT

    def do_GET(self):
        self.serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def serve(self):
        self.csr_subject = None
        body, reply = self.read_body()
        if reply is None:
            reply = self.route(body)
        self.server.state.log(self.log_line(reply.status))
        self.send(reply)

    def route(self, body):
        mode_text = self.server.state.mode()
        try:
            mode = parse_mode(mode_text)
        except ValueError:
            self.log_error("unusable mode %r", mode_text)
            return text_reply(500, f"est_server: unusable mode {mode_text!r}")
        endpoint = (self.command, urlsplit(self.path).path)
        if endpoint == ("GET", PREFIX + "cacerts"):
            return self.cacerts(mode[0])
        if endpoint == ("GET", PREFIX + "csrattrs"):
            return self.csrattrs(mode[0])
        if endpoint == ("POST", PREFIX + "simpleenroll"):
            return self.simpleenroll(body, mode_text, mode)
        if endpoint == ("POST", PREFIX + "simplereenroll"):
            return self.simplereenroll(body, mode_text, mode)
        return text_reply(404, "not found")

    # -- endpoints --

    def cacerts(self, name):
        fault = name if name in CACERTS_MODES else ""
        if fault == "server-error":
            return text_reply(500, "CA backend unavailable")
        return pkcs7_reply(certs_only_der([self.server.ca.cert]), CACERTS_TYPE, fault)

    def csrattrs(self, name):
        if name == "no-csrattrs":
            return Reply(204)
        return Reply(200, b64_lines(csrattrs_der(), "\n"),
                     [("Content-Type", "application/csrattrs"),
                      ("Content-Transfer-Encoding", "base64")])

    def simpleenroll(self, body, mode_text, mode):
        challenge = [("WWW-Authenticate", BASIC_CHALLENGE)]
        creds = self.basic_credentials()
        if creds is None:
            return text_reply(401, "enrolment secret required", challenge)
        if not self.server.secret_matches(creds):
            return text_reply(401, f"enrolment secret rejected for user {creds[0]}", challenge)
        return self.enroll(body, mode_text, mode, None)

    def simplereenroll(self, body, mode_text, mode):
        cert = self.client_cert()
        if cert is None:
            return text_reply(401, "client certificate required")
        return self.enroll(body, mode_text, mode, cert.subject)

    def enroll(self, body, mode_text, mode, required_subject):
        csr, reply = self.read_csr(body)
        if reply is not None:
            return reply
        self.csr_subject = csr.subject.rfc4514_string()
        self.csr_hashes = (
            hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest(),
            hashlib.sha256(csr.public_key().public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest())
        if required_subject is not None and csr.subject != required_subject:
            return text_reply(400, "subject does not match the current certificate")
        return self.issue(csr, mode_text, mode)

    def issue(self, csr, mode_text, mode):
        name, args = mode
        if self.server.retries.due(mode_text, name, args):
            return retry_reply(name, args[0])
        if name == "retry-malformed":
            return Reply(202, b"", [("Retry-After", "-5")])
        if name == "server-error":
            return text_reply(500, "CA backend unavailable")
        if name == "reject":
            return text_reply(403, "request rejected by policy: device not registered")
        key = csr.public_key()
        if name == "other-key":
            key = ec.generate_private_key(ec.SECP256R1()).public_key()
        lifetime = datetime.timedelta(minutes=30) if name == "short-lived" else None
        certs = [] if name == "empty-pkcs7" else [self.server.ca.issue(csr, key, lifetime)]
        return pkcs7_reply(certs_only_der(certs), ENROLL_TYPE, name)

    # -- request parts --

    def read_csr(self, body):
        """(CSR, None) when the body is an acceptable PKCS#10, else (None, error reply)."""
        media_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "application/pkcs10":
            return None, text_reply(415, "expected Content-Type application/pkcs10")
        try:
            der = b64_decode_body(body)
        except (binascii.Error, ValueError):
            return None, text_reply(400, "CSR is not valid base64")
        try:
            csr = x509.load_der_x509_csr(der)
        except ValueError:
            return None, text_reply(400, "CSR is not a DER PKCS#10 request")
        if not csr.is_signature_valid:
            return None, text_reply(400, "CSR signature does not verify")
        try:
            csr.public_key()
            csr_san(csr)
        except (ValueError, UnsupportedAlgorithm) as e:
            return None, text_reply(400, f"CSR key or extensions unusable: {e}")
        return csr, None

    def basic_credentials(self):
        """(user, password) of an Authorization: Basic header, None without one."""
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            pair = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return ("", "")
        user, _, password = pair.partition(":")
        return user, password

    def client_cert(self):
        # With CERT_OPTIONAL, a certificate that is present has already been verified.
        der = self.connection.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der) if der else None

    def read_body(self):
        """(body, None), or (None, error reply) when the body is unreadable. Always consumes
        the body so the next request on a kept-alive connection starts where it should."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self.read_chunked(), None
            length = self.headers.get("Content-Length")
            if length is None:
                return b"", None  # RFC 9112 section 6.3: no length, no chunking: no body
            if not length.strip().isdigit():
                raise BodyError(400, "malformed Content-Length")
            return self.read_bounded(int(length), 0), None
        except BodyError as e:
            # Whatever follows an unread body cannot be parsed as the next request.
            self.close_connection = True
            return None, text_reply(e.status, e.text)

    def read_bounded(self, size, already):
        if already + size > MAX_BODY:
            raise BodyError(413, f"request body over {MAX_BODY} bytes")
        return self.rfile.read(size)

    def read_chunked(self):
        body = b""
        while True:
            try:
                size = int(self.rfile.readline(100).split(b";")[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0:
                raise BodyError(400, "malformed chunked body")
            if size == 0:
                break
            body += self.read_bounded(size, len(body))
            self.rfile.readline(100)
        while self.rfile.readline(1000).strip():
            pass  # trailer fields, unused
        return body

    # -- output --

    def auth_kind(self):
        if self.connection.getpeercert(binary_form=True):
            return "cert"
        if self.headers.get("Authorization", "").strip().lower().startswith("basic "):
            return "basic"
        return "none"

    def log_line(self, status):
        line = f"{self.command} {self.path} {status} auth={self.auth_kind()}"
        if self.csr_subject is not None:
            # One line per request, whatever a CSR subject contains.
            line += " subject=" + self.csr_subject.replace("\n", "\\n").replace("\r", "\\r")
            line += " csr=%s key=%s" % self.csr_hashes
        return line

    def send(self, reply):
        framing = self.server.state.mode()
        framing = framing if framing in FRAMING_MODES and reply.status != 204 else ""
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif framing.startswith("close-delimited"):
            self.send_header("Connection", "close")
            self.close_connection = True
        elif reply.status != 204:  # RFC 9110: a 204 carries no Content-Length.
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if framing == "chunked":
            for i in range(0, len(reply.body), 7):
                piece = reply.body[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(reply.body)
        if framing == "close-delimited-cut":
            # TCP ends without close_notify (close_tls then finds nothing to close).
            self.wfile.flush()
            socket.socket.shutdown(self.connection, socket.SHUT_RDWR)


class EstServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port, tls, ca, secret, state):
        self.tls, self.ca, self.secret, self.state = tls, ca, secret, state
        self.retries = RetryCounter()
        super().__init__(("127.0.0.1", port), EstHandler)

    def server_bind(self):
        # HTTPServer.server_bind would resolve the host name, which stalls where DNS is
        # absent; the name is only used in CGI variables.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a client that
        # stalls during it cannot block the accepting loop.
        request.settimeout(IO_TIMEOUT)
        with self.tls.wrap_socket(request, server_side=True) as conn:
            self.RequestHandlerClass(conn, client_address, self)
            close_tls(conn)

    def handle_error(self, request, client_address):
        print(f"est_server: connection from {client_address[0]}:{client_address[1]}: "
              f"{sys.exc_info()[1]!r}", file=sys.stderr)

    def secret_matches(self, creds):
        user, password = self.secret
        # "&", not "and": both halves are always compared, as a real server would.
        return (hmac.compare_digest(creds[0].encode(), user.encode())
                & hmac.compare_digest(creds[1].encode(), password.encode()))


def close_tls(conn):
    # Sends close_notify, so strict clients do not report a truncated connection; the peer
    # has usually gone already, hence the short wait and the ignored errors.
    try:
        conn.settimeout(1)
        conn.unwrap()
    except (OSError, ValueError):
        pass


def tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cafile=args.ca_cert)
    return ctx


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca-cert", required=True)
    p.add_argument("--ca-key", required=True)
    p.add_argument("--tls-cert", required=True)
    p.add_argument("--tls-key", required=True)
    p.add_argument("--secret", required=True, help="USER:PASSWORD for simpleenroll")
    p.add_argument("--state", required=True)
    p.add_argument("--days", type=int, default=30)
    args = p.parse_args()
    user, sep, password = args.secret.partition(":")
    if not sep:
        p.error("--secret must be USER:PASSWORD")
    args.secret = (user, password)
    return args


def stop(signum, frame):
    raise SystemExit(0)


def main():
    args = parse_args()
    state = StateDir(args.state)
    state.remove_ready()
    server = EstServer(args.port, tls_context(args), Ca(args.ca_cert, args.ca_key, args.days),
                       args.secret, state)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        state.write_ready(server.server_address[1])
        server.serve_forever()
    finally:
        server.server_close()
        state.remove_ready()


if __name__ == "__main__":
    main()
