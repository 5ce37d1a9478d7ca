#!/usr/bin/env python3
"""Small raw client for the mtlsd integration tests (python's ssl = OpenSSL).

Subcommands (all print one JSON object on stdout, never raise):
  req    one connection; send bytes (whole, or in pieces), read until the
         server closes or goes quiet, parse the HTTP/1.x responses.
  stall  TCP connect and send nothing (or the first bytes of a real
         ClientHello, or plaintext); report when/whether the server closes.
  hold   open N TLS connections (optionally one request each), write
         'ready' to --ready-file, keep them open until --until-file exists
         (bounded by --max-wait), then report which ones the server closed.

Only 127.0.0.1 / ::1 are used. Every wait is bounded.
"""
import argparse
import json
import os
import socket
import ssl
import sys
import time


def ctx_for(a):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if a.ca:
        c.load_verify_locations(a.ca)
        c.check_hostname = True
    else:
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
    if a.cert:
        c.load_cert_chain(a.cert, a.key)
    if a.tls == "1.2":
        c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1_2
    elif a.tls == "1.3":
        c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1_3
    return c


def connect(a, timeout):
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((a.host, a.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def tls_wrap(a, s):
    t = ctx_for(a).wrap_socket(s, server_hostname="localhost", do_handshake_on_connect=False)
    t.do_handshake()
    return t


def decode_data(a):
    if a.data_file:
        with open(a.data_file, "rb") as f:
            d = f.read()
    else:
        d = a.data.encode("latin-1").decode("unicode_escape").encode("latin-1")
    return d * a.repeat


def recv_some(s, n=65536):
    """Returns bytes, b'' on orderly close; raises socket.timeout on quiet."""
    try:
        return s.recv(n)
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError,
            BrokenPipeError):
        return b""
    except ssl.SSLError as e:  # alert from the server and similar: closed
        if "timed out" in str(e):
            raise socket.timeout()
        return b""


def read_until(s, res, limit, quiet, recv, more=lambda b: False, done=lambda b: False):
    """The one receive loop: reads with `recv` until the peer closes
    (res["closed"], and res["recv_error"] on an error), `limit` seconds
    pass, done(bytes so far) holds, or `quiet` seconds pass without data
    while more(bytes so far) does not ask to keep waiting."""
    s.settimeout(quiet)
    buf = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            d = recv(s)
        except (socket.timeout, TimeoutError):
            if more(buf):
                continue
            break
        except OSError as e:
            res["recv_error"] = str(e)
            res["closed"] = True
            break
        if not d:
            res["closed"] = True
            break
        buf += d
        if done(buf):
            break
    return buf


def parse_responses(buf, head_only, heads=()):
    out = []
    i = 0
    while i < len(buf):
        head_only_this = head_only or len(out) in heads
        end = buf.find(b"\r\n\r\n", i)
        if end < 0:
            out.append({"partial": buf[i:].decode("latin-1")})
            break
        lines = buf[i:end].decode("latin-1").split("\r\n")
        status_line = lines[0]
        parts = status_line.split(" ", 2)
        r = {"status_line": status_line, "version": parts[0],
             "status": int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1,
             "headers": {}}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            r["headers"][k.strip().lower()] = v.strip()
        i = end + 4
        n = 0 if head_only_this else int(r["headers"].get("content-length", "0") or 0)
        if (not head_only_this and "content-length" not in r["headers"]
                and "transfer-encoding" not in r["headers"]
                and r["status"] >= 200 and r["status"] not in (204, 304)
                and r["headers"].get("connection", "").lower() == "close"):
            n = len(buf) - i  # delimited by the close (HTTP/1.0)
        r["body"] = buf[i:i + n].decode("latin-1")
        if len(buf) - i < n:
            r["truncated"] = True
        i += n
        out.append(r)
    return out


def cmd_req(a):
    res = {"connected": False, "handshake": None, "responses": [], "closed": False}
    t0 = time.monotonic()
    try:
        s = connect(a, a.timeout)
    except OSError as e:
        res["error"] = "connect: %s" % e
        return res
    res["connected"] = True
    if not a.plain:
        try:
            s = tls_wrap(a, s)
            res["handshake"] = "ok"
            res["tls_version"] = s.version()
        except (ssl.SSLError, OSError) as e:
            res["handshake"] = "failed: %s" % e
            return res
    data = decode_data(a)
    try:
        if a.chunk > 0:
            for k in range(0, len(data), a.chunk):
                s.sendall(data[k:k + a.chunk])
                if k == 0 and a.ready_file:
                    with open(a.ready_file, "w") as f:
                        f.write("sent first piece\n")
                if a.delay and k + a.chunk < len(data):
                    time.sleep(a.delay)
        else:
            s.sendall(data)
    except OSError as e:
        res["send_error"] = str(e)
    t_sent = time.monotonic()
    want = a.expect

    def complete(b):
        return len([r for r in parse_responses(b, a.head, a.heads)
                    if "partial" not in r and not r.get("truncated")])

    buf = read_until(s, res, a.timeout, a.quiet, recv_some,
                     # quiet, but still waiting for the responses we expect
                     more=lambda b: bool(want) and len(parse_responses(b, a.head, a.heads)) < want,
                     done=lambda b: a.stop and bool(want) and complete(b) >= want)
    res["elapsed_after_send"] = round(time.monotonic() - t_sent, 3)
    res["elapsed"] = round(time.monotonic() - t0, 3)
    res["raw_len"] = len(buf)
    res["responses"] = parse_responses(buf, a.head, a.heads)
    res["statuses"] = [r.get("status") for r in res["responses"]]
    try:
        s.close()
    except OSError:
        pass
    return res


def client_hello_bytes(a):
    c = ctx_for(a)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = c.wrap_bio(inc, out, server_hostname="localhost")
    try:
        o.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def cmd_stall(a):
    res = {"closed": False}
    try:
        s = connect(a, 5)
    except OSError as e:
        res["error"] = "connect: %s" % e
        return res
    sent = b""
    if a.partial_hello:
        ch = client_hello_bytes(a)
        sent = ch[:a.partial_hello]
        res["hello_len"] = len(ch)
    elif a.data:
        sent = decode_data(a)
    if sent:
        s.sendall(sent)
    res["sent"] = len(sent)
    t0 = time.monotonic()
    # raw reads: a reset is reported (recv_error), not taken for a close
    got = read_until(s, res, a.max_wait, 0.05, lambda c: c.recv(65536), more=lambda b: True)
    res["elapsed"] = round(time.monotonic() - t0, 3)
    res["received"] = len(got)
    res["received_head"] = got[:64].decode("latin-1")
    s.close()
    return res


def cmd_hold(a):
    res = {"opened": 0, "failed": [], "closed_by_server": []}
    conns = []
    req = decode_data(a) if a.data else b""
    for i in range(a.n):
        try:
            s = tls_wrap(a, connect(a, a.timeout))
            if req:
                s.sendall(req)
                s.settimeout(a.timeout)
                d = recv_some(s)
                if not d.startswith(b"HTTP/1.1 200"):
                    raise OSError("no 200: %r" % d[:40])
            conns.append(s)
        except (OSError, ssl.SSLError) as e:
            res["failed"].append("%d: %s" % (i, e))
    res["opened"] = len(conns)
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write("ready %d\n" % len(conns))
        os.rename(a.ready_file + ".tmp", a.ready_file)
    t0 = time.monotonic()
    while time.monotonic() - t0 < a.max_wait:
        if a.until_file and os.path.exists(a.until_file):
            break
        time.sleep(0.05)
    import select
    readable = select.select(conns, [], [], 0.2)[0] if conns else []
    for i, s in enumerate(conns):
        if s in readable:
            s.settimeout(0.2)
            try:
                if not recv_some(s):
                    res["closed_by_server"].append(i)
            except (socket.timeout, TimeoutError):
                pass
            except OSError:
                res["closed_by_server"].append(i)
    for s in conns:
        try:
            s.close()
        except OSError:
            pass
    res["held_seconds"] = round(time.monotonic() - t0, 3)
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["req", "stall", "hold"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--plain", action="store_true", help="no TLS")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--tls", choices=["1.2", "1.3"])
    p.add_argument("--data", default="", help="bytes with \\r\\n escapes")
    p.add_argument("--data-file")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--chunk", type=int, default=0, help="send in pieces of N bytes")
    p.add_argument("--delay", type=float, default=0.0, help="pause between pieces")
    p.add_argument("--head", action="store_true", help="responses carry no body")
    p.add_argument("--heads", type=lambda v: [int(x) for x in v.split(",")], default=[],
                   help="indices of responses to HEAD requests (no body)")
    p.add_argument("--expect", type=int, default=0, help="keep reading until N responses")
    p.add_argument("--stop", action="store_true", help="return as soon as --expect responses are in")
    p.add_argument("--quiet", type=float, default=1.0, help="stop after this long without data")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--partial-hello", type=int, default=0)
    p.add_argument("--max-wait", type=float, default=10.0)
    p.add_argument("-n", type=int, default=1)
    p.add_argument("--ready-file")
    p.add_argument("--until-file")
    a = p.parse_args()
    try:
        r = {"req": cmd_req, "stall": cmd_stall, "hold": cmd_hold}[a.cmd](a)
    except Exception as e:  # report, never a traceback in place of JSON
        r = {"exception": "%s: %s" % (type(e).__name__, e)}
    json.dump(r, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
