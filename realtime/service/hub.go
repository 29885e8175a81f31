package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/realtime/alert"
)

// HubOptions configure a Hub. Zero values take the defaults.
type HubOptions struct {
	// History is how many recent alerts are kept for Last-Event-ID resume
	// (default 1000).
	History int
	// MaxClients caps concurrent stream clients; more get 503 (default 64).
	MaxClients int
	// Heartbeat is the interval of comment lines that keep idle streams
	// (and proxies) open (default 15s).
	Heartbeat time.Duration
	// ClientBuffer is how many live alerts a slow client may fall behind
	// before it is disconnected to resume by id (default 256).
	ClientBuffer int
}

// Hub fans committed alerts out to Server-Sent Events clients and keeps a
// bounded history. Event ids are the alerts' own ids (stable across
// restarts of the service), so a client reconnecting with Last-Event-ID
// gets every alert after that one that is still in the history, or the
// whole history when the id has already left it.
type Hub struct {
	o       HubOptions
	mu      sync.Mutex
	history []hubEvent // oldest first, at most o.History
	clients map[*hubClient]struct{}

	rejected  atomic.Int64
	published atomic.Int64
	mClients  prometheus.GaugeFunc
	mRejected prometheus.Counter
	onReject  func(*http.Request)
}

type hubEvent struct {
	id   string
	data []byte
}

type hubClient struct {
	c       chan hubEvent
	dropped atomic.Bool // fell behind: the handler ends the stream
}

// NewHub returns an empty hub.
func NewHub(o HubOptions) *Hub {
	if o.History <= 0 {
		o.History = 1000
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 64
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.ClientBuffer <= 0 {
		o.ClientBuffer = 256
	}
	h := &Hub{o: o, clients: map[*hubClient]struct{}{}}
	h.mClients = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lambdalog_realtime_sse_clients", Help: "Connected alert stream clients."},
		func() float64 { h.mu.Lock(); defer h.mu.Unlock(); return float64(len(h.clients)) })
	h.mRejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_sse_rejected_total", Help: "Alert stream connections refused (503) over the client limit."})
	return h
}

// Collectors are the hub's metrics, for registration.
func (h *Hub) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.mClients, h.mRejected}
}

// SetRejectHook has f called with every stream request refused over the
// client limit (the HTTP server's rejection counter and log); call it
// before serving.
func (h *Hub) SetRejectHook(f func(*http.Request)) { h.onReject = f }

// Rejected is the number of clients refused over the limit.
func (h *Hub) Rejected() int64 { return h.rejected.Load() }

// Send publishes a committed alert to every client (it implements Sink).
func (h *Hub) Send(a alert.Alert) {
	b, err := json.Marshal(a)
	if err != nil {
		return // Alert always encodes; nothing sensible to stream otherwise
	}
	ev := hubEvent{id: a.ID, data: b}
	h.published.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.history = append(h.history, ev)
	if len(h.history) > h.o.History {
		n := copy(h.history, h.history[len(h.history)-h.o.History:])
		clear(h.history[n:])
		h.history = h.history[:n]
	}
	for c := range h.clients {
		select {
		case c.c <- ev:
		default:
			// Never block the service on a slow reader: end its stream;
			// it reconnects with Last-Event-ID and resumes from history.
			if c.dropped.CompareAndSwap(false, true) {
				close(c.c)
			}
			delete(h.clients, c)
		}
	}
}

// ServeHTTP streams alerts as text/event-stream ("event: alert", "id:"
// the alert id, "data:" its JSON).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	last := r.Header.Get("Last-Event-ID")
	c := &hubClient{c: make(chan hubEvent, h.o.ClientBuffer)}
	h.mu.Lock()
	if len(h.clients) >= h.o.MaxClients {
		h.mu.Unlock()
		h.rejected.Add(1)
		h.mRejected.Inc()
		if h.onReject != nil {
			h.onReject(r)
		}
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many alert stream clients", http.StatusServiceUnavailable)
		return
	}
	from := 0
	if last != "" {
		for i := len(h.history) - 1; i >= 0; i-- {
			if h.history[i].id == last {
				from = i + 1
				break
			}
		}
	}
	backlog := append([]hubEvent(nil), h.history[from:]...)
	if last == "" {
		backlog = nil // a new client gets live alerts only
	}
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.clients, c)
		h.mu.Unlock()
	}()
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives write timeouts
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": connected\nretry: 2000\n\n"); err != nil {
		return
	}
	for _, ev := range backlog {
		if writeEvent(w, ev) != nil {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}
	heartbeat := time.NewTicker(h.o.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-c.c:
			if !ok {
				return
			}
			if writeEvent(w, ev) != nil || rc.Flush() != nil {
				return
			}
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

func writeEvent(w http.ResponseWriter, ev hubEvent) error {
	_, err := fmt.Fprintf(w, "id: %s\nevent: alert\ndata: %s\n\n", ev.id, ev.data)
	return err
}
