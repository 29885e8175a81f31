package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/storage"
)

// TestHDFSFaultEndpoint arms a fault in a running `lambdalog hdfs` over its
// --faults endpoint, as the soak does from another process: while armed,
// creating a directory fails with the injected error; after DELETE it
// works again, and the endpoint reports how many calls the fault hit.
func TestHDFSFaultEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := lambdalog(ctx, t, "hdfs", "--listen", "127.0.0.1:0", "--http", "", "--faults", "127.0.0.1:0", "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("hdfs did not stop cleanly: %v", err)
		}
	}()
	urlRE := regexp.MustCompile(`^hdfs listening on (hdfs://\S+)`)
	faultsRE := regexp.MustCompile(`^hdfs faults on (http://\S+)`)
	var hdfsURL, faultsURL string
	sc := bufio.NewScanner(stdout)
	for (hdfsURL == "" || faultsURL == "") && sc.Scan() {
		if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
			hdfsURL = m[1]
		}
		if m := faultsRE.FindStringSubmatch(sc.Text()); m != nil {
			faultsURL = m[1]
		}
	}
	if hdfsURL == "" || faultsURL == "" {
		t.Fatalf("no address lines: hdfs %q faults %q", hdfsURL, faultsURL)
	}
	go io.Copy(io.Discard, stdout)

	fsys, err := storage.Open(ctx, hdfsURL+"soak", storage.Options{User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	call := func(method, body string) (int, map[string]int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, faultsURL, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]int
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, _ := call(http.MethodPost, `{"op":"mkdirs","action":"explode"}`); code != http.StatusBadRequest {
		t.Errorf("unknown action: status %d, want 400", code)
	}
	if code, out := call(http.MethodPost, `{"op":"mkdirs","nth":0,"action":"fail","exception":"org.apache.hadoop.SoakException"}`); code != http.StatusCreated || out["armed"] != 1 {
		t.Fatalf("arm: status %d %v", code, out)
	}
	err = fsys.MkdirAll(ctx, "a/b")
	if err == nil || !strings.Contains(err.Error(), "SoakException") {
		t.Fatalf("mkdir with an armed fault: %v, want the injected error", err)
	}
	if _, out := call(http.MethodGet, ""); out["fired"] < 1 {
		t.Errorf("GET /faults: %v, want fired >= 1", out)
	}
	if code, out := call(http.MethodDelete, ""); code != http.StatusOK || out["fired"] < 1 || out["armed"] != 0 {
		t.Errorf("DELETE /faults: %d %v", code, out)
	}
	if err := fsys.MkdirAll(ctx, "a/b"); err != nil {
		t.Fatalf("mkdir after the fault was cleared: %v", err)
	}
	if _, err := fsys.Stat(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
}
