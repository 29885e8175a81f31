package chtest

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/lambdalog/lambdalog/internal/chserver"
)

func TestFindBinaryMissing(t *testing.T) {
	none := func(string) (string, error) { return "", exec.ErrNotFound }
	if _, err := chserver.FindBinary(none); !errors.Is(err, chserver.ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(chserver.ErrNotInstalled.Error(), "apt-get install -y clickhouse-server") {
		t.Error("the error must say how to install ClickHouse")
	}
}

// TestMissingServerFailsUnderCI runs a test that needs ClickHouse with an
// empty PATH, once with CI=true (it must fail) and once without (it skips).
func TestMissingServerFailsUnderCI(t *testing.T) {
	if os.Getenv("CHTEST_CHILD") == "1" {
		Start(t)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range []string{"true", ""} {
		cmd := exec.Command(exe, "-test.run=^TestMissingServerFailsUnderCI$", "-test.v")
		cmd.Env = []string{"CHTEST_CHILD=1", "PATH=/nonexistent", "CI=" + ci, "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		switch ci {
		case "true":
			if err == nil || !strings.Contains(string(out), "CI=true and ClickHouse is required") {
				t.Errorf("CI=true: want a failure naming the missing server, got err=%v\n%s", err, out)
			}
		default:
			if err != nil || !strings.Contains(string(out), "SKIP") {
				t.Errorf("CI unset: want a skip, got err=%v\n%s", err, out)
			}
		}
	}
}
