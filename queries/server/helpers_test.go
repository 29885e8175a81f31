package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// fakeSpeedLayer stands in for the realtime service's HTTP API: alerts
// sent on Send go to every connected /api/alerts/stream client as
// documented alert JSON ("data: {...}"), and /api/windows/top answers
// Top.
type fakeSpeedLayer struct {
	*httptest.Server
	mu      sync.Mutex
	clients map[chan []byte]bool
	// connected is signalled each time a stream client connects.
	connected chan struct{}
	Top       any
	// Token, when set, is required as a bearer token, as the realtime
	// service does with realtime.http_token.
	Token string
}

func newFakeSpeedLayer(t *testing.T) *fakeSpeedLayer {
	f := &fakeSpeedLayer{clients: map[chan []byte]bool{}, connected: make(chan struct{}, 16),
		Top: map[string]any{"windows": []map[string]any{{"rule_id": "ssh_bruteforce", "key": "198.18.0.9", "value": 12}}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/alerts/stream", func(w http.ResponseWriter, r *http.Request) {
		ch := make(chan []byte, 16)
		f.mu.Lock()
		f.clients[ch] = true
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.clients, ch)
			f.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, ": connected\n\n")
		w.(http.Flusher).Flush()
		f.connected <- struct{}{}
		for {
			select {
			case <-r.Context().Done():
				return
			case b := <-ch:
				fmt.Fprintf(w, "data: %s\n\n", b)
				w.(http.Flusher).Flush()
			}
		}
	})
	mux.HandleFunc("GET /api/windows/top", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(f.Top)
	})
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.Token != "" && r.Header.Get("Authorization") != "Bearer "+f.Token {
			http.Error(w, "missing or wrong token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// Send publishes one alert to the connected clients.
func (f *fakeSpeedLayer) Send(alert map[string]any) {
	b, _ := json.Marshal(alert)
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.clients {
		ch <- b
	}
}

// alert returns a documented alert record (docs/alerts.md).
func alert(id, rule, severity, ip string) map[string]any {
	return map[string]any{
		"event_id": id, "event_kind": "alert", "event_type": "start", "@timestamp": "2026-03-02T00:01:02.5Z",
		"rule_id": rule, "rule_name": rule, "rule_category": "threshold", "severity": severity, "severity_id": 4,
		"event_dataset": []string{"auth"}, "key_fields": []string{"source_ip"}, "key_values": []string{ip},
		"window_start": "2026-03-02T00:00:00Z", "window_end": "2026-03-02T00:01:00Z", "aggregate": "count",
		"value": 7, "threshold": 5, "value_precision": "exact", "event_count": 7, "suppressed_count": 0,
	}
}

// httptestServer serves s on a loopback port for the benchmark's life.
func httptestServer(b *testing.B, s *Server) string {
	ts := httptest.NewServer(s.Handler())
	b.Cleanup(ts.Close)
	return ts.URL
}
