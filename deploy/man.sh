#!/usr/bin/env bash
# deploy/man.sh MTLSD OUT: the mtlsd(8) man page, made from the binary's own
# --help (so the options never drift from the code) plus signals, probes
# and files. Run by the build (CMake target mtlsd-man).
set -euo pipefail
bin=$1 out=$2
ver=$("$bin" --version | head -1 | awk '{print $2}')
esc() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
{
    printf '.TH MTLSD 8 "" "mtlsd %s" "System Administration"\n' "$ver"
    printf '.SH NAME\nmtlsd \\- mutual\\-TLS HTTPS server\n'
    printf '.SH SYNOPSIS\n.B mtlsd\n\\-\\-cert FILE \\-\\-key FILE \\-\\-client\\-ca FILE [options]\n'
    printf '.SH OPTIONS\n.nf\n'
    "$bin" --help | esc
    printf '.fi\n'
    cat <<'X'
.SH SIGNALS
.TP
.B SIGHUP
re\-read the certificate, key, \-\-client\-ca, CRLs and the ticket key file;
on any failure the previous material stays in service. With \-\-watch on
(the default) the same reload runs by itself when those files change.
.TP
.BR SIGTERM ", " SIGINT
/readyz answers 503, serving continues for \-\-shutdown\-delay, then open
connections get \-\-shutdown\-grace to finish. A second signal ends the delay.
.SH STATUS LISTENER
With \-\-status\-listen, plain HTTP without a client certificate:
GET /healthz (alive), GET /readyz (200 serving, 503 draining or not loaded),
GET /metrics (Prometheus text, including mtlsd_reloads_total,
mtlsd_certificate_not_after_timestamp_seconds and
mtlsd_crl_next_update_timestamp_seconds).
.SH SYSTEMD
Type=notify: READY=1, RELOADING=1 and STOPPING=1 are sent to $NOTIFY_SOCKET.
.SH EXIT STATUS
0 clean stop; 1 runtime failure; 2 bad command line or files.
.SH SEE ALSO
deploy/README.md in the source tree: Kubernetes manifests, the systemd unit
and the ticket\-key rotation procedure.
X
} >"$out"
