package service

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
)

// TestAlertsMatchGroundTruth runs generated traffic with known attacks
// through the service and reads the alerts topic (read committed): every
// attack raised its rule's alert for its key, and nothing else alerted.
func TestAlertsMatchGroundTruth(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	g, err := gen.New(gen.Options{Seed: 7, Rate: 2000, Duration: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	prod := kafkatest.Client(t, b, gen.ProducerOptions(kgo.SnappyCompression())...)
	sink := gen.NewKafkaSink(prod)
	truth, err := g.Run(ctx, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "rt", AlertsTopic: "alerts", LateTopic: "late-events",
		Sources: []Source{{"auth", "sshd"}, {"firewall", "netfilter"}, {"ids", "eve"}, {"web", "access"}}, Rules: rs, MaxPollWait: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	// A live client on the alert stream.
	srv := httptest.NewServer(svc.Hub())
	defer srv.Close()
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	streamed := make(chan string, 1000)
	go func() {
		req, _ := httpNewRequest(streamCtx, srv.URL)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				streamed <- sc.Text()
			}
		}
	}()

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()

	want := map[string]bool{}
	for _, r := range truth.Records {
		want[r.Rule+"|"+r.Key] = true
	}
	got := map[string]bool{}
	var unexpected []string
	reader := kafkatest.Client(t, b, kgo.ConsumeTopics("alerts"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	deadline := time.After(90 * time.Second)
	for len(got) < len(want) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := reader.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			var a alert.Alert
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Errorf("bad alert JSON: %v", err)
				return
			}
			if a.Type != alert.TypeStart {
				return
			}
			k := a.RuleID + "|" + strings.Join(a.KeyValues, ",")
			if !want[k] {
				unexpected = append(unexpected, k)
			}
			got[k] = true
		})
		select {
		case <-deadline:
			var missing []string
			for k := range want {
				if !got[k] {
					missing = append(missing, k)
				}
			}
			t.Fatalf("after 90 s, %d of %d expected alerts; missing %v; unexpected %v; engine %+v", len(got), len(want), missing, unexpected, svc.engine.Stats())
		default:
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("service: %v", err)
	}
	recall := 0
	for k := range want {
		if got[k] {
			recall++
		}
	}
	t.Logf("ground truth %d attacks: recall %d/%d, %d unexpected alerts, %d events, %d alerts streamed live",
		len(want), recall, len(want), len(unexpected), svc.events.Load(), len(streamed))
	if len(unexpected) > 0 {
		t.Errorf("alerts outside the ground truth (precision < 1): %v", unexpected)
	}
	if recall != len(want) {
		t.Errorf("recall %d/%d", recall, len(want))
	}
	if len(streamed) == 0 {
		t.Error("no alert reached the live stream")
	}
}
