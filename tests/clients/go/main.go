// Interop client for mtlsd: Go crypto/tls + net/http (standard library only).
//
//	interop PORT CA_FILE CASE...
//
// CASE is NAME,VERSION,CERTS,KEYS: VERSION 1.2 or 1.3; CERTS and KEYS are
// ':'-separated PEM files (several: Go picks one by the CertificateRequest's
// types, signature algorithms and CA names), "-" for none. Per case: one
// connection with two requests (keep-alive), then a new connection that
// should resume; one JSON line per case on stdout. The server's access log
// says which requests shared a connection and which resumed.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"time"
)

type result struct {
	Case     string `json:"case"`
	Statuses []int  `json:"statuses"`
	Reused   bool   `json:"reused"`  // 2nd request on the 1st connection
	Resumed  bool   `json:"resumed"` // the 2nd connection resumed (client view)
	Version  string `json:"version"`
	Error    string `json:"error,omitempty"`
}

func get(client *http.Client, url string, r *result, reused *bool) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if reused != nil {
			*reused = i.Reused
		}
	}}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	r.Statuses = append(r.Statuses, resp.StatusCode)
	if resp.TLS != nil {
		r.Resumed = resp.TLS.DidResume
		r.Version = map[uint16]string{tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[resp.TLS.Version]
	}
	return nil
}

func run(port string, pool *x509.CertPool, spec string) result {
	f := strings.Split(spec, ",")
	r := result{Case: f[0], Statuses: []int{}}
	if len(f) != 4 {
		r.Error = "bad case " + spec
		return r
	}
	v := uint16(tls.VersionTLS13)
	if f[1] == "1.2" {
		v = tls.VersionTLS12
	}
	conf := &tls.Config{RootCAs: pool, MinVersion: v, MaxVersion: v,
		ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	if f[2] != "-" {
		certs, keys := strings.Split(f[2], ":"), strings.Split(f[3], ":")
		for i := range certs {
			c, err := tls.LoadX509KeyPair(certs[i], keys[i])
			if err != nil {
				r.Error = err.Error()
				return r
			}
			conf.Certificates = append(conf.Certificates, c)
		}
	}
	newClient := func() (*http.Client, *http.Transport) {
		t := &http.Transport{TLSClientConfig: conf, MaxIdleConnsPerHost: 1}
		return &http.Client{Transport: t, Timeout: 10 * time.Second}, t
	}
	url := fmt.Sprintf("https://127.0.0.1:%s/whoami?c=%s&n=", port, r.Case)
	c1, t1 := newClient()
	if err := get(c1, url+"1", &r, nil); err != nil {
		r.Error = err.Error()
		return r
	}
	if err := get(c1, url+"2", &r, &r.Reused); err != nil {
		r.Error = err.Error()
		return r
	}
	t1.CloseIdleConnections()
	c2, t2 := newClient()
	defer t2.CloseIdleConnections()
	if err := get(c2, url+"3", &r, nil); err != nil {
		r.Error = err.Error()
	}
	return r
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: interop PORT CA_FILE CASE...")
		os.Exit(2)
	}
	pem, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	enc := json.NewEncoder(os.Stdout)
	for _, spec := range os.Args[3:] {
		enc.Encode(run(os.Args[1], pool, spec))
	}
}
