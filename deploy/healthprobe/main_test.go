package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestProbe(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("kafka: no broker answered\n"))
			return
		}
		w.Write([]byte("kafka: ok\n"))
	}))
	defer srv.Close()

	probe := func(args ...string) (int, string) {
		var out, errw bytes.Buffer
		code := run(context.Background(), args, &out, &errw)
		return code, out.String() + errw.String()
	}
	if code, out := probe(srv.URL + "/readyz"); code != 1 || !strings.Contains(out, "503") || !strings.Contains(out, "kafka: no broker answered") {
		t.Errorf("not ready: exit %d, output %q; want 1 with the status and the reason", code, out)
	}
	ready.Store(true)
	if code, out := probe(srv.URL + "/readyz"); code != 0 || !strings.Contains(out, "kafka: ok") {
		t.Errorf("ready: exit %d, output %q; want 0", code, out)
	}
	if code, _ := probe(srv.URL + "/nope"); code != 1 {
		t.Errorf("404: exit %d, want 1", code)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()
	if code, out := probe("--timeout", "1s", dead); code != 1 || !strings.Contains(out, "refused") {
		t.Errorf("nothing listening: exit %d, output %q; want 1 and connection refused", code, out)
	}
	if code, _ := probe(); code != 2 {
		t.Errorf("no URL: exit %d, want 2", code)
	}
}
