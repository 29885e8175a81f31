package httpserve

import (
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
