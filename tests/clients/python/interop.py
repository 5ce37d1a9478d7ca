#!/usr/bin/env python3
"""Interop client for mtlsd: Python's ssl + http.client, and requests.

    interop.py PORT CA_FILE CASE...

CASE is NAME,VERSION,CERT,KEY (one certificate; "-" for none; see
tests/clients/go/main.go). Per case: http.client on one TLS connection with
two requests (keep-alive), then a new connection given the first one's
session (resumption), then one requests.Session with two requests (requests
cannot pin the TLS version per call: it runs with the system's defaults and
the same certificate). One JSON line per case.
"""
import http.client
import json
import socket
import ssl
import sys


def context(ca, version, cert, key):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(ca)
    v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    c.minimum_version = c.maximum_version = v
    if cert != "-":
        c.load_cert_chain(cert, key)
    return c


def connect(ctx, port, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    conn.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
    return conn


def get(conn, path):
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def run(port, ca, spec):
    name, version, cert, key = spec.split(",")
    r = {"case": name, "statuses": [], "reused": False, "resumed": False, "version": ""}
    path = "/whoami?c=%s&n=" % name
    try:
        ctx = context(ca, version, cert, key)
        conn = connect(ctx, port)
        sock = conn.sock
        r["statuses"].append(get(conn, path + "1"))
        r["statuses"].append(get(conn, path + "2"))
        r["reused"] = conn.sock is sock
        session = conn.sock.session
        conn.close()
        conn = connect(ctx, port, session)
        r["statuses"].append(get(conn, path + "3"))
        r["resumed"] = conn.sock.session_reused
        r["version"] = conn.sock.version()
        conn.close()
        try:
            import requests
        except ImportError:
            r["requests"] = "not installed"
        else:
            with requests.Session() as s:
                # per call: a session's verify loses to REQUESTS_CA_BUNDLE
                # from the environment (requests issue #3829)
                s.trust_env = False
                r["requests"] = [s.get("https://127.0.0.1:%d%s%d" % (port, path, n), timeout=10,
                                       verify=ca, cert=None if cert == "-" else (cert, key)
                                       ).status_code for n in (4, 5)]
    except Exception as e:  # a refusal is a result, not a crash
        r["error"] = "%s: %s" % (type(e).__name__, e)
    return r


def main():
    port, ca = int(sys.argv[1]), sys.argv[2]
    for spec in sys.argv[3:]:
        print(json.dumps(run(port, ca, spec)), flush=True)


if __name__ == "__main__":
    main()
