package chtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chserver"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestFindBinaryMissing(t *testing.T) {
	none := func(string) (string, error) { return "", exec.ErrNotFound }
	if _, err := chserver.FindBinary(none); !errors.Is(err, chserver.ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(chserver.ErrNotInstalled.Error(), "apt-get install -y clickhouse-server") {
		t.Error("the error must say how to install ClickHouse")
	}
}

// child runs this test binary's test named run in a sub-process with the
// given extra environment and returns its output and error.
func child(t *testing.T, run string, env ...string) (string, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+run+"$", "-test.v")
	cmd.Env = append([]string{"HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMissingServerFailsUnderCI runs tests that need ClickHouse with a PATH
// that has no server, once with CI=true (they must fail) and once without
// (they skip), through both Start and Shared.
func TestMissingServerFailsUnderCI(t *testing.T) {
	switch os.Getenv("CHTEST_CHILD") {
	case "start":
		Start(t)
		t.Log("REACHED")
		return
	case "shared":
		Shared(t)
		t.Log("REACHED")
		return
	}
	for _, mode := range []string{"start", "shared"} {
		for _, ci := range []string{"true", ""} {
			out, err := child(t, "TestMissingServerFailsUnderCI", "CHTEST_CHILD="+mode, "PATH=/nonexistent", "CI="+ci)
			if strings.Contains(out, "REACHED") {
				t.Errorf("%s, CI=%q: the test went on without a server:\n%s", mode, ci, out)
			}
			switch ci {
			case "true":
				if err == nil || !strings.Contains(out, "CI=true and ClickHouse is required") || !strings.Contains(out, "--- FAIL") {
					t.Errorf("%s, CI=true: want a failure naming the missing server, got err=%v\n%s", mode, err, out)
				}
			default:
				if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, "apt-get install") {
					t.Errorf("%s, CI unset: want a skip saying how to install, got err=%v\n%s", mode, err, out)
				}
			}
		}
	}
}

// TestLogTailOnFailure: a failing test shows the server's log.
func TestLogTailOnFailure(t *testing.T) {
	if os.Getenv("CHTEST_CHILD") == "fail" {
		Start(t)
		t.Error("deliberate failure")
		return
	}
	requireServer(t)
	out, err := child(t, "TestLogTailOnFailure", "CHTEST_CHILD=fail", "PATH="+os.Getenv("PATH"))
	if err == nil || !strings.Contains(out, "deliberate failure") {
		t.Fatalf("the child test did not fail: %v\n%s", err, out)
	}
	if !strings.Contains(out, "clickhouse log tail") || !strings.Contains(out, "Logging errors to") {
		t.Errorf("no server log in the failure output:\n%s", out)
	}
}

func TestNewDatabase(t *testing.T) {
	srv := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var a, b string
	t.Run("inner/with spaces", func(t *testing.T) {
		a, b = NewDatabase(t, srv), NewDatabase(t, srv)
		if a == b {
			t.Fatalf("two databases named %q", a)
		}
		for _, db := range []string{a, b} {
			if n, err := srv.Query(ctx, "SELECT count() FROM system.databases WHERE name = '"+db+"'"); err != nil || n != "1\n" {
				t.Errorf("database %s: %q %v", db, n, err)
			}
			if _, err := srv.Query(ctx, "CREATE TABLE "+db+".t (x UInt8) ENGINE = Memory"); err != nil {
				t.Error(err)
			}
		}
	})
	for _, db := range []string{a, b} {
		if n, err := srv.Query(ctx, "SELECT count() FROM system.databases WHERE name = '"+db+"'"); err != nil || n != "0\n" {
			t.Errorf("database %s was not dropped after its test: %q %v", db, n, err)
		}
	}
	if Shared(t) != srv {
		t.Error("Shared started a second server")
	}
}

// requireServer skips (or fails under CI) like the helpers do.
func requireServer(t *testing.T) {
	t.Helper()
	if _, err := chserver.FindBinary(nil); err != nil {
		missing(t, err)
	}
}
