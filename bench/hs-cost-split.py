"""bench/hs-cost's grouping of callgrind_annotate's exclusive Ir by function:
crypto primitives by algorithm, wolfSSL's other code (TLS state machine,
certificate parsing, the OpenSSL layer if built), mtlsd, libc. Reads the
annotate output on stdin; argv: handshakes, label. With --calls FILE N:
allocator calls per handshake, read from the callgrind file."""
import re
import sys


def calls(path, n):
    """Calls of the allocator per handshake, from the callgrind file itself
    (every call site's calls= line under a cfn= of that function)."""
    names, want, count, cur = {}, ("malloc", "calloc", "realloc", "free"), {}, None
    with open(path) as f:
        for line in f:
            m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3).strip()
                if m.group(1) == "cfn":
                    cur = names.get(m.group(2))
                continue
            if line.startswith("calls=") and cur in want:
                count[cur] = count.get(cur, 0) + int(line[6:].split()[0])
                cur = None
    return "    allocator calls per handshake: " + ", ".join(
        "%s %.1f" % (w, count.get(w, 0) / n) for w in want)


def split(n, label):
    """Exclusive Ir by function from callgrind_annotate on stdin, grouped."""
    CRYPTO = [  # (group, source file regex, function regex)
        ("crypto: P-256", r"/sp_|/ecc\.c", r""),
        ("crypto: X25519", r"fe_x25519|curve25519", r""),
        ("crypto: SHA-256/384 + HMAC/HKDF", r"/sha256|/sha512|/hmac\.c|/kdf\.c|/hash\.c", r""),
        ("crypto: MD5/SHA-1", r"/md5\.c|/sha\.c", r""),
        ("crypto: AES-GCM", r"/aes", r""),
        ("crypto: RNG", r"/random\.c", r""),
    ]
    tot, by, top = 0, {}, {}
    for line in sys.stdin:
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?):(\S+)", line)
        if not m:
            continue
        ir, src, fn = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        # clone and start_thread carry the whole thread in a mid-run dump.
        if fn.startswith("0x") or src == "PROGRAM TOTALS" or fn in ("clone", "start_thread"):
            continue
        tot += ir
        g = None
        for name, srx, _ in CRYPTO:
            if re.search(srx, src):
                g = name
                break
        if g is None and src.endswith("misc.c"):
            # misc.c's inline helpers (ForceZero, rotations) are attributed to
            # the function they were inlined into.
            g = "crypto: SHA-256/384 + HMAC/HKDF" if re.search(r"Sha|Hmac|Transform|HKDF", fn) \
                else "wolfSSL: TLS, certificates, compat layer"
        if g is None:
            # mtlsd is built with relative paths, libc's are "./...", and
            # wolfSSL (built elsewhere, linked in statically) has absolute ones.
            if "/malloc/" in src:
                g = "libc malloc/free"
            elif "llhttp" in src or re.match(r"(src|include/mtlsd|tools)/", src):
                g = "mtlsd (+ llhttp)"
            elif src.startswith("/") and "/usr/" not in src:
                g = "wolfSSL: TLS, certificates, compat layer"
            else:
                g = "libc other, syscall stubs"
        by[g] = by.get(g, 0) + ir
        top.setdefault(g, {})
        key = fn + (" (" + src.rsplit("/", 1)[-1] + ")" if g.startswith("wolfSSL") else "")
        top[g][key] = top[g].get(key, 0) + ir
    print("  %s: %.0f Ir per handshake" % (label, tot / n))
    for g, ir in sorted(by.items(), key=lambda x: -x[1]):
        print("    %-36s %9.0f  %5.1f%%" % (g, ir / n, 100.0 * ir / tot))
    for g in ("wolfSSL: TLS, certificates, compat layer", "mtlsd (+ llhttp)", "libc other, syscall stubs",
              "crypto: MD5/SHA-1"):
        t = sorted(top.get(g, {}).items(), key=lambda x: -x[1])[:12]
        if t:
            print("      top of %s: %s" % (g, ", ".join("%s %.0f" % (f, i / n) for f, i in t)))


if __name__ == "__main__":
    if sys.argv[1] == "--calls":
        print(calls(sys.argv[2], int(sys.argv[3])))
    else:
        split(int(sys.argv[1]), sys.argv[2])
