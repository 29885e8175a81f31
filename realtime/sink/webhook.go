// Package sink delivers committed alerts outside Kafka. Webhook POSTs
// each alert as JSON with retries and a dead-letter file; it never blocks
// the speed layer's loop: alerts wait in a bounded queue, and an alert that
// finds the queue full goes straight to the dead-letter file (counted).
package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalog/lambdalog/realtime/alert"
)

// WebhookOptions configure a Webhook. Zero values take the defaults below.
type WebhookOptions struct {
	// URL receives one POST per alert, body the alert JSON (docs/alerts.md).
	URL string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// Queue bounds the alerts waiting for delivery (default 1024).
	Queue int
	// MaxAttempts is how many POSTs an alert gets before it is written to
	// the dead-letter file (default 5).
	MaxAttempts int
	// Backoff is the wait after the first failure; it doubles per attempt
	// up to MaxBackoff (defaults 200ms and 10s).
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one POST (default 10s).
	Timeout time.Duration
	// DeadLetter is the file (JSON lines, appended) of alerts that could
	// not be delivered. Empty: they are logged and counted only.
	DeadLetter string
	// Client sends the requests (default: a client with Timeout).
	Client     *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Defaults for WebhookOptions.
const (
	DefaultQueue       = 1024
	DefaultMaxAttempts = 5
	DefaultBackoff     = 200 * time.Millisecond
	DefaultMaxBackoff  = 10 * time.Second
	DefaultTimeout     = 10 * time.Second
)

// WebhookStats counts what a Webhook did.
type WebhookStats struct {
	Delivered  int64 // alerts accepted by the endpoint (2xx)
	Retries    int64 // failed POSTs that were retried
	DeadLetter int64 // alerts written to the dead-letter file
	Overflow   int64 // of those, alerts that found the queue full
}

// Webhook delivers alerts to an HTTP endpoint. Send is safe for concurrent
// use; Run does the delivery.
type Webhook struct {
	o     WebhookOptions
	queue chan alert.Alert
	log   *slog.Logger

	delivered, retries, dead, overflow atomic.Int64
	mDelivered, mRetries, mDead        prometheus.Counter
	mOverflow                          prometheus.Counter

	dlMu sync.Mutex // serialises appends to the dead-letter file
}

// NewWebhook checks o and returns a Webhook; call Run to deliver.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	if o.URL == "" {
		return nil, errors.New("sink: webhook URL is required")
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Webhook{o: o, queue: make(chan alert.Alert, o.Queue), log: o.Logger,
		mDelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_webhook_delivered_total", Help: "Alerts accepted by the webhook."}),
		mRetries:   prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_webhook_retries_total", Help: "Webhook POSTs that failed and were retried."}),
		mDead:      prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_webhook_dead_letter_total", Help: "Alerts written to the webhook dead-letter file."}),
		mOverflow:  prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_webhook_overflow_total", Help: "Alerts that found the webhook queue full (dead-lettered)."}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{w.mDelivered, w.mRetries, w.mDead, w.mOverflow} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("sink: register metrics: %w", err)
			}
		}
	}
	return w, nil
}

// Send queues a for delivery without blocking; when the queue is full the
// alert is dead-lettered at once.
func (w *Webhook) Send(a alert.Alert) {
	select {
	case w.queue <- a:
	default:
		w.overflow.Add(1)
		w.mOverflow.Inc()
		w.deadLetter(a, "queue full")
	}
}

// Stats returns the counters.
func (w *Webhook) Stats() WebhookStats {
	return WebhookStats{Delivered: w.delivered.Load(), Retries: w.retries.Load(), DeadLetter: w.dead.Load(), Overflow: w.overflow.Load()}
}

// Run delivers queued alerts one at a time until ctx ends; alerts still
// queued then are dead-lettered ("shutdown") so none is lost silently.
func (w *Webhook) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case a := <-w.queue:
					w.deadLetter(a, "shutdown")
				default:
					return nil
				}
			}
		case a := <-w.queue:
			w.deliver(ctx, a)
		}
	}
}

// deliver POSTs a, retrying with exponential backoff, and dead-letters it
// after MaxAttempts failures.
func (w *Webhook) deliver(ctx context.Context, a alert.Alert) {
	body, err := json.Marshal(a)
	if err != nil {
		w.deadLetter(a, "encode: "+err.Error())
		return
	}
	wait := w.o.Backoff
	var last error
	for attempt := 1; attempt <= w.o.MaxAttempts; attempt++ {
		if last = w.post(ctx, body); last == nil {
			w.delivered.Add(1)
			w.mDelivered.Inc()
			return
		}
		if attempt == w.o.MaxAttempts || ctx.Err() != nil {
			break
		}
		w.retries.Add(1)
		w.mRetries.Inc()
		w.log.Warn("webhook: delivery failed, retrying", "alert", a.ID, "attempt", attempt, "wait", wait, "err", last)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, w.o.MaxBackoff)
	}
	w.deadLetter(a, last.Error())
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sink: webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if w.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.o.Token)
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("sink: webhook POST: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("sink: webhook answered %s", resp.Status)
	}
	return nil
}

// deadLetterRecord is one line of the dead-letter file.
type deadLetterRecord struct {
	Reason string      `json:"reason"`
	At     time.Time   `json:"dead_lettered_at"`
	Alert  alert.Alert `json:"alert"`
}

func (w *Webhook) deadLetter(a alert.Alert, reason string) {
	w.dead.Add(1)
	w.mDead.Inc()
	if w.o.DeadLetter == "" {
		w.log.Error("webhook: alert not delivered", "alert", a.ID, "reason", reason)
		return
	}
	line, err := json.Marshal(deadLetterRecord{Reason: reason, At: time.Now().UTC(), Alert: a})
	if err != nil {
		w.log.Error("webhook: dead letter", "alert", a.ID, "err", err)
		return
	}
	w.dlMu.Lock()
	defer w.dlMu.Unlock()
	f, err := os.OpenFile(w.o.DeadLetter, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		w.log.Error("webhook: write dead letter", "file", w.o.DeadLetter, "alert", a.ID, "err", err)
	}
}
