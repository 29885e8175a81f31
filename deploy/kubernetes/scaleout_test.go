// Package kubernetes holds the test of the batch workers' CronJob; the
// other manifests are tested by deploy/deploy_test.go.
package kubernetes

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func decode(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestBatchWorkersCronJob checks the batch scale-out CronJob: shipped
// suspended, its pods are split workers with a unique id each, and their
// command line passes the real binary's --validate-only against the
// shipped configuration.
func TestBatchWorkersCronJob(t *testing.T) {
	cj := decode(t, "batch-workers.yaml")
	if get(cj, "spec", "suspend") != true {
		t.Error("the CronJob is not shipped suspended")
	}
	if cj["kind"] != "CronJob" || get(cj, "spec", "concurrencyPolicy") != "Forbid" {
		t.Fatalf("kind %v, concurrencyPolicy %v", cj["kind"], get(cj, "spec", "concurrencyPolicy"))
	}
	job := get(cj, "spec", "jobTemplate", "spec")
	par, _ := get(job, "parallelism").(int)
	if par < 2 || get(job, "completions") != par {
		t.Errorf("parallelism %v completions %v: want several workers, each a completion", get(job, "parallelism"), get(job, "completions"))
	}
	pod := get(job, "template", "spec")
	c := get(pod, "containers", 0)
	args := strs(get(c, "args"))
	i := slices.Index(args, "--worker")
	if args[0] != "batch" || !slices.Contains(args, "--split") || i < 0 || args[i+1] != "$(POD_NAME)" {
		t.Fatalf("args %q: want batch ... --split --worker $(POD_NAME)", args)
	}
	env := map[string]string{"POD_NAME": "lambdalog-batch-workers-123-abcde", "LAMBDALOG_CLICKHOUSE_DSN": "clickhouse://lambdalog:dummy@clickhouse.example:9000/lambdalog"}
	var envNames []string
	for _, e := range get(c, "env").([]any) {
		envNames = append(envNames, get(e, "name").(string))
	}
	if !slices.Contains(envNames, "POD_NAME") || get(c, "env", 0, "valueFrom", "fieldRef", "fieldPath") != "metadata.name" {
		t.Errorf("POD_NAME does not come from the pod's name: %v", get(c, "env"))
	}
	if get(pod, "securityContext", "runAsNonRoot") != true || get(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("the workers do not run as non-root on a read-only root filesystem")
	}
	cfg := stageConfig(t)
	bin := filepath.Join(t.TempDir(), "lambdalog")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/lambdalog").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, extra := range []map[string]string{nil, {"LAMBDALOG_BATCH_SCHEDULES": `[{job: load-events, cron: "5 * * * *"}]`}} {
		a := slices.Clone(args)
		for j := range a {
			a[j] = strings.ReplaceAll(a[j], "$(POD_NAME)", env["POD_NAME"])
			if a[j] == "/etc/lambdalog/lambdalog.yaml" {
				a[j] = cfg
			}
		}
		if extra != nil {
			// The scheduler without its reports schedule, as the
			// comment in batch-workers.yaml advises.
			a = []string{"batch", "schedule", "--config", cfg}
		}
		cmd := exec.Command(bin, append(a, "--validate-only")...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "LAMBDALOG_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		for k, v := range extra {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "ok: lambdalog batch") {
			t.Errorf("lambdalog %s --validate-only: %v\n%s", strings.Join(a, " "), err, out.String())
		}
	}
}

// stageConfig copies the shipped configuration with the files it reads
// (under /etc/lambdalog/secrets) replaced by placeholders in a temp dir.
func stageConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("config/lambdalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	s := string(data)
	for _, ref := range regexp.MustCompile(`/etc/lambdalog/secrets/[\w.-]+`).FindAllString(s, -1) {
		p := filepath.Join(root, ref)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("placeholder\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s = strings.ReplaceAll(s, ref, p)
	}
	file := filepath.Join(root, "lambdalog.yaml")
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}
