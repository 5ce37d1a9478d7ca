#!/usr/bin/env python3
"""echo_backend.py: the upstream application for the proxy tests.

An HTTP/1.1 server (asyncio, keep-alive, no third-party code) that answers
every request with a JSON description of what it received:

  {"method", "target", "version", "headers": [[name, value], ...] (in order,
   as sent), "body_length", "body_sha256", "conn": <its connection number>,
   "requests_on_conn": <1 for the first request of a connection>}

It can be told how to misbehave, by query parameter or by a header
"X-Echo-<name>: <value>" (the query wins):

  delay=S        wait S seconds before sending the response head
  size=N         answer with N body bytes (a repeating pattern, sha256 in the
                 X-Echo-Body-Sha256 trailer-free header) instead of the JSON
  chunked=1      send the body chunked (default: Content-Length)
  cut=N          send the head and N body bytes of a longer body, then close
  status=NNN     answer with this status (default 200)
  malformed=K    K: "status" (a garbage status line), "cl-te" (Content-Length
                 and chunked together), "two-cl" (two different
                 Content-Lengths), "header" (a header without a colon),
                 "close" (close without answering)
  drop=1         answer, then close the connection without saying so (the
                 keep-alive race a proxy must survive)
  race=1         on a kept-alive connection (any request but its first), read
                 the request and close without answering, as if the idle
                 connection had timed out just as the request came: the
                 keep-alive race a proxy retries idempotent requests for. The
                 retry, the first request of a new connection, is answered.
  slowread=S     wait S seconds before reading the request body

Special target: GET /_stats answers {"connections", "requests"} counted since
start (the proxy tests show connection reuse with it).

Usage: echo_backend.py [--listen HOST:PORT] [--unix PATH] [--port-file F]
With --listen 127.0.0.1:0 the chosen port is written to --port-file. Prints
"ready" on stdout when listening.
"""
import argparse
import asyncio
import hashlib
import json
import os
import sys
import urllib.parse

MAX_HEAD = 64 * 1024
PATTERN = bytes(range(256)) * 256  # 64 KiB, repeated for size=N bodies

stats = {"connections": 0, "requests": 0}


def pattern_sha256(n):
    h = hashlib.sha256()
    left = n
    while left:
        k = min(left, len(PATTERN))
        h.update(PATTERN[:k])
        left -= k
    return h.hexdigest()


class BadRequest(Exception):
    pass



# ?malformed=NAME: answers a proxy must refuse (502), then the connection closes.
MALFORMED = {
    "status": b"HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n",
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n",
    "two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "header": b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
}

async def read_head(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise BadRequest("truncated head")
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("head too large")
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise BadRequest("bad request line")
    headers = []
    for line in lines[1:]:
        if b":" not in line:
            raise BadRequest("bad header")
        name, value = line.split(b":", 1)
        headers.append([name.decode("latin-1"), value.strip(b" \t").decode("latin-1")])
    return parts[0].decode(), parts[1].decode("latin-1"), parts[2].decode(), headers


async def read_hashed(reader, n, sha, what):
    """Reads n body bytes into the hash; BadRequest(what) if they stop short."""
    left = n
    while left:
        chunk = await reader.read(min(left, 65536))
        if not chunk:
            raise BadRequest(what)
        sha.update(chunk)
        left -= len(chunk)
    return n


async def read_body(reader, headers, sha):
    get = lambda n: [v for k, v in headers if k.lower() == n]
    te = get("transfer-encoding")
    cl = get("content-length")
    total = 0
    if te:
        if te[-1].lower() != "chunked":
            raise BadRequest("unknown transfer-encoding")
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return total
            total += await read_hashed(reader, size, sha, "truncated chunk")
            if await reader.readexactly(2) != b"\r\n":
                raise BadRequest("bad chunk end")
    if cl:
        total += await read_hashed(reader, int(cl[0]), sha, "truncated body")
    return total


def option(query, headers, name):
    if name in query:
        return query[name][-1]
    want = "x-echo-" + name
    for k, v in headers:
        if k.lower() == want:
            return v
    return None


async def send_body(writer, n, chunked, cut=None):
    sent = 0
    while sent < n:
        k = min(n - sent, len(PATTERN))
        if cut is not None and sent + k > cut:
            k = cut - sent
            if k <= 0:
                return False
        data = PATTERN[:k]
        if chunked:
            writer.write(b"%x\r\n" % k + data + b"\r\n")
        else:
            writer.write(data)
        sent += k
        await writer.drain()
        if cut is not None and sent >= cut:
            return False
    if chunked:
        writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


async def handle(reader, writer):
    stats["connections"] += 1
    conn_id = stats["connections"]
    on_conn = 0
    try:
        while True:
            try:
                head = await read_head(reader)
            except BadRequest:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                break
            if head is None:
                break
            method, target, version, headers = head
            stats["requests"] += 1
            on_conn += 1
            url = urllib.parse.urlsplit(target)
            query = urllib.parse.parse_qs(url.query)
            slowread = option(query, headers, "slowread")
            if slowread:
                await asyncio.sleep(float(slowread))
            sha = hashlib.sha256()
            try:
                length = await read_body(reader, headers, sha)
            except (BadRequest, ValueError, asyncio.IncompleteReadError):
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                break
            if option(query, headers, "race") == "1" and on_conn > 1:
                break
            delay = option(query, headers, "delay")
            if delay:
                await asyncio.sleep(float(delay))
            status = int(option(query, headers, "status") or 200)
            chunked = option(query, headers, "chunked") == "1"
            malformed = option(query, headers, "malformed")
            client_close = any(k.lower() == "connection" and "close" in v.lower() for k, v in headers)
            if malformed == "close":
                break
            if malformed in MALFORMED:
                writer.write(MALFORMED[malformed])
                await writer.drain()
                break
            if url.path == "/_stats":
                body = json.dumps(stats).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                if client_close:
                    break
                continue
            size = option(query, headers, "size")
            cut = option(query, headers, "cut")
            reason = b"OK" if status == 200 else b"Status"
            head_lines = [b"HTTP/1.1 %d %s" % (status, reason), b"X-Echo-Conn: %d" % conn_id,
                          b"Connection: keep-alive, X-Echo-Hop", b"X-Echo-Hop: must not pass",
                          b"Keep-Alive: timeout=60"]
            if size is not None or cut is not None:
                n = int(size or 0)
                if cut is not None and n <= int(cut):
                    n = int(cut) * 2 + 1024
                head_lines.append(b"X-Echo-Body-Sha256: " + pattern_sha256(n).encode())
                head_lines.append(b"Content-Type: application/octet-stream")
                head_lines.append(b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % n)
                writer.write(b"\r\n".join(head_lines) + b"\r\n\r\n")
                if method == "HEAD":
                    ok = True
                else:
                    ok = await send_body(writer, n, chunked, int(cut) if cut is not None else None)
                if not ok:
                    break  # cut: close mid-response
            else:
                body = json.dumps({
                    "method": method, "target": target, "version": version,
                    "headers": headers, "body_length": length,
                    "body_sha256": sha.hexdigest(), "conn": conn_id,
                    "requests_on_conn": on_conn,
                }).encode()
                head_lines.append(b"Content-Type: application/json")
                if chunked:
                    head_lines.append(b"Transfer-Encoding: chunked")
                    writer.write(b"\r\n".join(head_lines) + b"\r\n\r\n")
                    mid = len(body) // 2
                    for part in (body[:mid], body[mid:]):
                        if part:
                            writer.write(b"%x\r\n" % len(part) + part + b"\r\n")
                    writer.write(b"0\r\n\r\n")
                else:
                    head_lines.append(b"Content-Length: %d" % len(body))
                    writer.write(b"\r\n".join(head_lines) + b"\r\n\r\n" + (b"" if method == "HEAD" else body))
            await writer.drain()
            if client_close or option(query, headers, "drop") == "1":
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", help="HOST:PORT (port 0: any)")
    ap.add_argument("--unix", help="Unix socket path")
    ap.add_argument("--port-file", help="write the TCP port here")
    a = ap.parse_args()
    servers = []
    if a.listen:
        host, port = a.listen.rsplit(":", 1)
        s = await asyncio.start_server(handle, host.strip("[]"), int(port), limit=MAX_HEAD)
        servers.append(s)
        if a.port_file:
            with open(a.port_file + ".tmp", "w") as f:
                f.write("%d\n" % s.sockets[0].getsockname()[1])
            os.rename(a.port_file + ".tmp", a.port_file)
    if a.unix:
        servers.append(await asyncio.start_unix_server(handle, a.unix, limit=MAX_HEAD))
    if not servers:
        ap.error("give --listen and/or --unix")
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
