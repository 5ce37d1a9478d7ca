#!/usr/bin/env python3
"""Crafted ClientHellos for the mtlsd integration tests, where no real client
produces the input (no TLS library sends 400 cipher suites or a ticket whose
length field lies). Sends one ClientHello over TCP to 127.0.0.1 and prints one
JSON object: {"reply": "server_hello" | "hello_retry_request" | "alert" |
"closed" | "timeout", "alert": N (the alert description, when one came),
"psk_selected": bool (TLS 1.3: the ServerHello chose a PSK)}.

  hello.py PORT suites --tls 1.2|1.3 --count N
      N cipher suites: N-2 the server does not use (old and unassigned
      values), then two it does, last.
  hello.py PORT ticket --tls 1.2|1.3 --key-name HEX --enc-len N [--size M]
      a session ticket (TLS 1.2 session_ticket extension; TLS 1.3 PSK
      identity) of M bytes in all: key name, random IV, enc_len N (a lie
      when N + 66 > M), random bytes, as if from a ticket the server issued.

Every wait is bounded (5 s)."""
import json
import os
import socket
import struct
import sys

TLS12_SUITES = [0xC02B, 0xC02F]  # ECDHE-{ECDSA,RSA}-AES128-GCM-SHA256
TLS13_SUITES = [0x1301, 0x1302]
HRR_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def u8(b):
    return struct.pack("!B", len(b)) + b


def u16(b):
    return struct.pack("!H", len(b)) + b


def ext(t, body):
    return struct.pack("!H", t) + u16(body)


def filler(n):
    """n suite values the server does not use: legacy and unassigned ones."""
    out, v = [], 1
    while len(out) < n:
        if v not in (0x00FF, 0x5600):  # signalling values
            out.append(v)
        v += 1
    return out


def client_hello(tls, suites, extra=b"", psk_identity=None):
    sigalgs = u16(struct.pack("!4H", 0x0403, 0x0804, 0x0401, 0x0503))
    exts = ext(10, u16(struct.pack("!2H", 0x001D, 0x0017)))  # groups
    exts += ext(11, u8(b"\x00"))                             # point formats
    exts += ext(13, sigalgs)
    exts += ext(0, u16(b"\x00" + u16(b"localhost")))         # server_name
    exts += extra
    if tls == "1.3":
        exts += ext(43, u8(struct.pack("!H", 0x0304)))       # supported_versions
        share = struct.pack("!H", 0x001D) + u16(os.urandom(32))
        exts += ext(51, u16(share))                          # key_share
        exts += ext(45, u8(b"\x01"))                         # psk_dhe_ke
        if psk_identity is not None:                         # pre_shared_key, last
            ids = u16(psk_identity) + struct.pack("!I", 0)
            binders = u8(os.urandom(32))
            exts += ext(41, u16(ids) + u16(binders))
    body = struct.pack("!H", 0x0303) + os.urandom(32) + u8(os.urandom(32))
    body += u16(b"".join(struct.pack("!H", s) for s in suites)) + u8(b"\x00")
    body += u16(exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    out = b""
    for i in range(0, len(hs), 16384):  # records of at most 2^14 bytes
        out += b"\x16\x03\x01" + u16(hs[i:i + 16384])
    return out


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


def exchange(port, data):
    r = {"reply": "closed", "psk_selected": False}
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(data)
        head = recv_exact(s, 5)
        rec = recv_exact(s, struct.unpack("!H", head[3:5])[0])
        if head[0] == 21 and len(rec) >= 2:
            r.update(reply="alert", alert=rec[1])
        elif head[0] == 22 and rec[:1] == b"\x02":
            random = rec[6:38]
            r["reply"] = "hello_retry_request" if random == HRR_RANDOM else "server_hello"
            r["psk_selected"] = b"\x00\x29\x00\x02" in rec  # pre_shared_key, 2 bytes
    except socket.timeout:
        r["reply"] = "timeout"
    except (EOFError, OSError):
        pass
    finally:
        s.close()
    return r


def main(argv):
    port, cmd, args = int(argv[1]), argv[2], argv[3:]
    opt = dict(zip(args[::2], args[1::2]))
    tls = opt.get("--tls", "1.3")
    if cmd == "suites":
        n = int(opt["--count"])
        own = TLS13_SUITES if tls == "1.3" else TLS12_SUITES
        data = client_hello(tls, filler(n - len(own)) + own)
    elif cmd == "ticket":
        size, enc_len = int(opt.get("--size", "300")), int(opt["--enc-len"])
        t = bytes.fromhex(opt["--key-name"]) + os.urandom(16) + struct.pack("!H", enc_len)
        t += os.urandom(size - len(t))
        if tls == "1.3":
            data = client_hello(tls, TLS13_SUITES, psk_identity=t)
        else:
            data = client_hello(tls, TLS12_SUITES, extra=ext(35, t))
    else:
        print(json.dumps({"error": "unknown command " + cmd}))
        return 2
    print(json.dumps(exchange(port, data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
