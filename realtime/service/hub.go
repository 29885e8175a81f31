package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/lambdalog/lambdalog/realtime/alert"
)

// Hub fans committed alerts out to Server-Sent Events clients and keeps a
// bounded history so a client reconnecting with Last-Event-ID misses
// nothing that is still in it.
type Hub struct {
	mu         sync.Mutex
	history    []hubEvent // ring of the newest alerts
	size       int
	seq        int64
	clients    map[chan hubEvent]struct{}
	maxClients int
}

type hubEvent struct {
	seq  int64
	data []byte
}

// NewHub keeps the last history alerts and serves at most maxClients.
func NewHub(history, maxClients int) *Hub {
	return &Hub{size: history, maxClients: maxClients, clients: map[chan hubEvent]struct{}{}}
}

// Publish sends a committed alert to every client.
func (h *Hub) Publish(a alert.Alert) {
	b, err := json.Marshal(a)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	ev := hubEvent{seq: h.seq, data: b}
	h.history = append(h.history, ev)
	if len(h.history) > h.size {
		h.history = h.history[len(h.history)-h.size:]
	}
	for c := range h.clients {
		select {
		case c <- ev:
		default: // a slow client misses live events; it can resume by id
		}
	}
}

// ServeHTTP streams alerts as text/event-stream; each event's id is its
// position, so Last-Event-ID resumes after it.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	}
	c := make(chan hubEvent, 256)
	h.mu.Lock()
	if len(h.clients) >= h.maxClients {
		h.mu.Unlock()
		http.Error(w, "too many alert stream clients", http.StatusServiceUnavailable)
		return
	}
	var backlog []hubEvent
	for _, ev := range h.history {
		if ev.seq > after {
			backlog = append(backlog, ev)
		}
	}
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.clients, c)
		h.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	for _, ev := range backlog {
		fmt.Fprintf(w, "id: %d\nevent: alert\ndata: %s\n\n", ev.seq, ev.data)
	}
	fl.Flush()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-c:
			fmt.Fprintf(w, "id: %d\nevent: alert\ndata: %s\n\n", ev.seq, ev.data)
			fl.Flush()
		case <-heartbeat.C:
			fmt.Fprint(w, ": heartbeat\n\n")
			fl.Flush()
		}
	}
}
