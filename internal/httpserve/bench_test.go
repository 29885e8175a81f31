package httpserve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// BenchmarkChain is the cost the limits add to one request: rate limit
// (a bucket per client among 1000), bearer token check and body limit,
// in front of a handler that does nothing.
func BenchmarkChain(b *testing.B) {
	s, err := New(Options{Name: "bench", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		Token: "bench-token", RateLimit: 1e9, RateBurst: 1e9})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	reqs := make([]*http.Request, 1000)
	for i := range reqs {
		r := httptest.NewRequest("GET", "/api/x", nil)
		r.RemoteAddr = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256) + ":5000"
		r.Header.Set("Authorization", "Bearer bench-token")
		reqs[i] = r
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(w, reqs[i%len(reqs)])
	}
}

// BenchmarkLimiterParallel is the limiter alone under contention from
// every core (one mutex for the table).
func BenchmarkLimiterParallel(b *testing.B) {
	l := newLimiter(1e9, 1e9, 0, time.Now)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "10.0.0." + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.allow(keys[i%len(keys)])
			i++
		}
	})
}

// BenchmarkLoopback is a whole request over loopback HTTP/1.1 keep-alive
// (client and server on the same 2 cores), bare and behind the limits,
// to put BenchmarkChain in proportion.
func BenchmarkLoopback(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	s, err := New(Options{Name: "bench", Handler: ok, Token: "bench-token", RateLimit: 1e9, RateBurst: 1e9})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", ok}, {"limits", s.Handler()}} {
		b.Run(c.name, func(b *testing.B) {
			ts := httptest.NewServer(c.h)
			defer ts.Close()
			cl := ts.Client()
			req, _ := http.NewRequest("GET", ts.URL+"/api/x", nil)
			req.Header.Set("Authorization", "Bearer bench-token")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := cl.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
