#!/usr/bin/env python3
"""Consistency of deploy/: the Kubernetes manifests, the systemd unit and the
Containerfile agree with each other and with `mtlsd --help`. Used by
deploy_manifests.sh; prints PASS:/FAIL: lines like lib.sh.

usage: deploy_check.py SRC_DIR HELP_TEXT_FILE"""
import os
import re
import sys

import yaml

src, help_file = sys.argv[1], sys.argv[2]
HELP = open(help_file).read()
# Flags that other branches add (merged separately); the manifests rely on
# them and say so in their comments.
PENDING = {"io": "issue 12 (epoll backend)", "upstream": "issue 11 (reverse proxy)"}
fails = 0


def check(name, ok, detail=""):
    global fails
    if ok:
        print(f"PASS: {name}")
    else:
        fails += 1
        print(f"FAIL: {name}")
        if detail:
            print(f"    {detail}")


def flags_of(args):
    """['--a=b', '--c', 'd'] -> {'a': 'b', 'c': 'd'}"""
    out, i = {}, 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            if "=" in a:
                k, v = a[2:].split("=", 1)
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                k, v = a[2:], args[i + 1]
                i += 1
            else:
                k, v = a[2:], ""
            out[k] = v
        i += 1
    return out


def known_flag(name):
    return re.search(r"^\s+(-\w, )?--" + re.escape(name) + r"\b", HELP, re.M) is not None


kdir = os.path.join(src, "deploy", "kubernetes")
docs = []
for f in sorted(os.listdir(kdir)):
    if not f.endswith(".yaml"):
        continue
    try:
        loaded = [d for d in yaml.safe_load_all(open(os.path.join(kdir, f))) if d]
        check(f"{f}: valid YAML ({len(loaded)} document(s))", len(loaded) > 0)
    except yaml.YAMLError as e:
        check(f"{f}: valid YAML", False, str(e)[:300])
        continue
    for d in loaded:
        d["_file"] = f
        docs.append(d)

kust = [d for d in docs if d.get("kind") == "Kustomization"]
check("kustomization lists every manifest",
      kust and sorted(kust[0]["resources"]) ==
      sorted(f for f in os.listdir(kdir) if f.endswith(".yaml") and f != "kustomization.yaml"))
by_kind = {}
for d in docs:
    by_kind.setdefault(d.get("kind"), []).append(d)
for kind, n in (("Issuer", 1), ("Certificate", 2), ("Deployment", 2), ("Service", 1), ("Job", 1)):
    check(f"{n} {kind}(s) present", len(by_kind.get(kind, [])) == n)
for d in docs:
    if d.get("kind") not in ("Kustomization", "Namespace"):
        check(f"{d['_file']} {d['kind']}: in namespace mtlsd", d["metadata"].get("namespace") == "mtlsd")

issuers = {d["metadata"]["name"] for d in by_kind.get("Issuer", [])}
cert_secrets = {}
for c in by_kind.get("Certificate", []):
    s = c["spec"]
    check(f"Certificate {c['metadata']['name']}: issuerRef names the Issuer",
          s["issuerRef"]["name"] in issuers and s["issuerRef"]["kind"] == "Issuer")
    check(f"Certificate {c['metadata']['name']}: key rotated on renewal",
          s.get("privateKey", {}).get("rotationPolicy") == "Always")
    cert_secrets[s["secretName"]] = s
server_cert = next(s for s in cert_secrets.values() if "server auth" in s["usages"])
client_cert = next(s for s in cert_secrets.values() if "client auth" in s["usages"])
check("server Certificate: renewBefore beyond mtlsd's 7-day expiry warning",
      int(server_cert["renewBefore"].rstrip("h")) > 7 * 24)
svc = by_kind["Service"][0]
svc_name = svc["metadata"]["name"]
check("server Certificate: names the Service's DNS name",
      f"{svc_name}.mtlsd.svc" in server_cert["dnsNames"])
documented = open(os.path.join(src, "deploy", "README.md")).read()
HAND_MADE = {"mtlsd-ticket-keys"}  # made by hand, as deploy/README.md says


def check_pod(name, pod, mtlsd_container_args_expected):
    spec = pod["spec"]
    sc = spec.get("securityContext", {})
    check(f"{name}: runAsNonRoot with a non-zero uid", sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) > 0)
    check(f"{name}: seccompProfile RuntimeDefault", sc.get("seccompProfile", {}).get("type") == "RuntimeDefault")
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for c in spec["containers"]:
        csc = c.get("securityContext", {})
        check(f"{name}/{c['name']}: read-only root, no privilege escalation, capabilities drop ALL",
              csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
              and csc.get("capabilities", {}).get("drop") == ["ALL"])
        for m in c.get("volumeMounts", []):
            check(f"{name}/{c['name']}: mount {m['mountPath']} is a directory mount (no subPath)",
                  "subPath" not in m and "subPathExpr" not in m)
            check(f"{name}/{c['name']}: mount {m['name']} has a volume", m["name"] in vols)
    for v in vols.values():
        if "secret" in v:
            sn = v["secret"]["secretName"]
            check(f"{name}: Secret {sn} is issued by a Certificate or documented",
                  sn in cert_secrets or (sn in HAND_MADE and sn in documented))
            check(f"{name}: Secret {sn} mode 0440 (fsGroup reads it)", v["secret"].get("defaultMode") == 0o440)
    return spec, vols


def mount_of(container, path):
    """The volumeMount whose directory holds `path`."""
    d = os.path.dirname(path)
    return next((m for m in container.get("volumeMounts", []) if m["mountPath"] == d), None)


for dep in by_kind.get("Deployment", []):
    name = dep["metadata"]["name"]
    spec, vols = check_pod(f"Deployment {name}", dep["spec"]["template"], True)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    check(f"Deployment {name}: selector matches the pod labels",
          all(labels.get(k) == v for k, v in dep["spec"]["selector"]["matchLabels"].items()))
    m = next(c for c in spec["containers"] if c["name"] == "mtlsd")
    f = flags_of(m["args"])
    for k in f:
        if k in PENDING:
            check(f"Deployment {name}: --{k} (from {PENDING[k]}, pending merge) documented in deploy/README.md",
                  f"--{k}" in documented or (k == "io" and "--io=auto" in documented))
        else:
            check(f"Deployment {name}: --{k} is an mtlsd flag", known_flag(k))
    for flag, fname in (("cert", "tls.crt"), ("key", "tls.key"), ("client-ca", "ca.crt")):
        p = f.get(flag, "")
        mnt = mount_of(m, p)
        check(f"Deployment {name}: --{flag} {p} is {fname} in a mounted Secret directory",
              os.path.basename(p) == fname and mnt is not None and "secret" in vols[mnt["name"]]
              and vols[mnt["name"]]["secret"]["secretName"] in cert_secrets)
    tls_secret = vols[mount_of(m, f["cert"])["name"]]["secret"]["secretName"]
    check(f"Deployment {name}: serves the server Certificate's Secret",
          cert_secrets.get(tls_secret) is server_cert)
    if "ticket-key-file" in f:
        mnt = mount_of(m, f["ticket-key-file"])
        check(f"Deployment {name}: --ticket-key-file in the mounted ticket Secret",
              mnt is not None and vols[mnt["name"]]["secret"]["secretName"] == "mtlsd-ticket-keys")
    ports = {p["name"]: p["containerPort"] for p in m["ports"]}
    check(f"Deployment {name}: --listen port is the https containerPort",
          f["listen"].rsplit(":", 1)[1] == str(ports.get("https")))
    check(f"Deployment {name}: --status-listen port is the status containerPort",
          f["status-listen"].rsplit(":", 1)[1] == str(ports.get("status")))
    check(f"Deployment {name}: status listener reachable by the kubelet (not loopback)",
          not f["status-listen"].startswith("127."))
    probes = {k: m[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in m}
    check(f"Deployment {name}: readiness and liveness probes", "readinessProbe" in probes and "livenessProbe" in probes)
    for k, p in probes.items():
        g = p["httpGet"]
        check(f"Deployment {name}: {k} on the status port",
              g["port"] == "status" or g["port"] == ports.get("status"))
        want = "/healthz" if k == "livenessProbe" else "/readyz"
        check(f"Deployment {name}: {k} path {g['path']} is {want}", g["path"] == want)
    drain = float(f.get("shutdown-delay", 0)) + float(f.get("shutdown-grace", 5))
    check(f"Deployment {name}: terminationGracePeriodSeconds above delay + grace ({drain} s)",
          spec.get("terminationGracePeriodSeconds", 30) > drain)
    if "upstream" in f:
        up = f["upstream"]
        check(f"Deployment {name}: --upstream unix: socket", up.startswith("unix:/"))
        sock_dir = os.path.dirname(up[5:])
        shared = [c for c in spec["containers"] if any(mm["mountPath"] == sock_dir for mm in c.get("volumeMounts", []))]
        vnames = {mm["name"] for c in shared for mm in c["volumeMounts"] if mm["mountPath"] == sock_dir}
        check(f"Deployment {name}: the socket directory is an emptyDir shared by mtlsd and the app",
              len(shared) >= 2 and len(vnames) == 1 and "emptyDir" in vols[vnames.pop()])
    else:
        check(f"Deployment {name}: 3 replicas", dep["spec"]["replicas"] == 3)
        check(f"Service {svc_name}: selects this Deployment's pods",
              all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()))
        sp = svc["spec"]["ports"][0]
        check(f"Service {svc_name}: targetPort is the https port", sp["targetPort"] in ("https", ports["https"]))
        SVC_PORT = sp["port"]

job = by_kind["Job"][0]
jspec, jvols = check_pod("Job mtlsd-client", job["spec"]["template"], False)
jc = jspec["containers"][0]
jargs = " ".join(jc["args"])
check("Job: calls the Service by name and port", f"https://{svc_name}.mtlsd.svc:{SVC_PORT}/" in jargs)
jsecret = [v["secret"]["secretName"] for v in jvols.values() if "secret" in v]
check("Job: mounts the client Certificate's Secret", jsecret and cert_secrets.get(jsecret[0]) is client_cert)
mp = jc["volumeMounts"][0]["mountPath"]
check("Job: presents tls.crt/tls.key and trusts ca.crt from that mount",
      all(f"{mp}/{n}" in jargs for n in ("tls.crt", "tls.key", "ca.crt")))

# ---- systemd unit ------------------------------------------------------------
unit = open(os.path.join(src, "deploy", "systemd", "mtlsd.service")).read().replace("\\\n", " ")
kv = {}
for line in unit.splitlines():
    if "=" in line and not line.startswith("#"):
        k, v = line.split("=", 1)
        kv.setdefault(k.strip(), []).append(v.strip())
check("unit: Type=notify", kv.get("Type") == ["notify"])
check("unit: ExecReload sends SIGHUP", "-HUP" in kv.get("ExecReload", [""])[0])
for k, v in (("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"),
             ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE")):
    check(f"unit: {k}={v}", kv.get(k) == [v])
scf = " ".join(kv.get("SystemCallFilter", []))
check("unit: SystemCallFilter=@system-service plus io_uring", "@system-service" in scf and "io_uring_enter" in scf and "io_uring_setup" in scf)
check("unit: RestrictAddressFamilies set", bool(kv.get("RestrictAddressFamilies")))
check("unit: LimitNOFILE set", bool(kv.get("LimitNOFILE")))
uf = flags_of(kv["ExecStart"][0].split()[1:])
for k in uf:
    check(f"unit: --{k} is an mtlsd flag", known_flag(k))
check("unit: files under /etc/mtlsd (ReadOnlyPaths)", all(uf[k].startswith("/etc/mtlsd/") for k in ("cert", "key", "client-ca")))

# ---- Containerfile -------------------------------------------------------------
cf = open(os.path.join(src, "deploy", "Containerfile")).read()
users = re.findall(r"^USER\s+(\S+)", cf, re.M)
check("Containerfile: runs as a numeric non-root user", users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0")
check("Containerfile: builds from this checkout", "COPY . ." in cf and "cmake --build" in cf)

print(f"# {fails} failed")
sys.exit(1 if fails else 0)
