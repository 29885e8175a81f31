package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
)

// faultRequest is the JSON body of POST /faults: one hdfstest.Fault.
type faultRequest struct {
	// Op is a NameNode method ("complete", "addBlock", "create", ...),
	// dn.writeBlock or dn.readBlock; empty matches every call.
	Op string `json:"op"`
	// Nth picks one matching call counted from now (1 = the next); 0 every one.
	Nth int `json:"nth"`
	// Action: fail, fail_after, hang, delay, drop or refuse_complete.
	Action     string `json:"action"`
	Exception  string `json:"exception"`
	Message    string `json:"message"`
	Delay      string `json:"delay"`
	AfterBytes int64  `json:"after_bytes"`
}

var faultActions = map[string]hdfstest.Action{
	"fail": hdfstest.Fail, "fail_after": hdfstest.FailAfter, "hang": hdfstest.Hang,
	"delay": hdfstest.Delay, "drop": hdfstest.Drop, "refuse_complete": hdfstest.RefuseComplete,
}

// faultHandler exposes the test server's fault hooks over HTTP so a
// separate process (the soak in deploy/soak) can inject HDFS errors into a
// running `lambdalog hdfs`: POST /faults arms one fault, GET /faults says
// how many calls the armed faults acted on, DELETE /faults disarms them all.
func faultHandler(s *hdfstest.Server) http.Handler {
	var (
		mu    sync.Mutex
		armed []*hdfstest.Armed
	)
	fired := func() int {
		n := 0
		for _, a := range armed {
			n += a.Fired()
		}
		return n
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/faults" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodPost:
			var req faultRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, "faults: bad JSON: "+err.Error(), http.StatusBadRequest)
				return
			}
			act, ok := faultActions[req.Action]
			if !ok {
				http.Error(w, fmt.Sprintf("faults: unknown action %q: want fail, fail_after, hang, delay, drop or refuse_complete", req.Action), http.StatusBadRequest)
				return
			}
			f := hdfstest.Fault{Op: req.Op, Nth: req.Nth, Action: act, Exception: req.Exception, Message: req.Message, AfterBytes: req.AfterBytes}
			if req.Delay != "" {
				d, err := time.ParseDuration(req.Delay)
				if err != nil {
					http.Error(w, "faults: delay: "+err.Error(), http.StatusBadRequest)
					return
				}
				f.Delay = d
			}
			armed = append(armed, s.Faults().Add(f))
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "{\"armed\":%d}\n", len(armed))
		case http.MethodGet:
			fmt.Fprintf(w, "{\"armed\":%d,\"fired\":%d}\n", len(armed), fired())
		case http.MethodDelete:
			n := fired()
			s.Faults().Clear()
			armed = nil
			fmt.Fprintf(w, "{\"armed\":0,\"fired\":%d}\n", n)
		default:
			http.Error(w, "faults: want GET, POST or DELETE", http.StatusMethodNotAllowed)
		}
	})
}

// serveFaults serves faultHandler on addr until ctx ends; wait returns once
// the listener is closed.
func serveFaults(ctx context.Context, addr string, s *hdfstest.Server, log *slog.Logger) (bound string, wait func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("hdfs: fault endpoint listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: faultHandler(s), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("hdfs: fault endpoint shutdown", "err", err)
		}
	}()
	return ln.Addr().String(), func() error { return <-done }, nil
}
