// Package deploy holds the production deployment files (Dockerfile, Compose,
// Kubernetes) and the tests that check them without Docker or a cluster:
// every YAML parses, every lambdalog command line in them is accepted by the
// real binary against the shipped configuration, and the manifests keep the
// promises operators rely on (probes, resources, non-root, one scheduler).
package deploy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lambdalog/lambdalog/internal/config"
)

// --- helpers -----------------------------------------------------------

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// lambdalogBin builds ./cmd/lambdalog once per test binary, exactly as an
// operator would run it.
func lambdalogBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "lambdalog-deploy-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "lambdalog")
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/lambdalog")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build ./cmd/lambdalog: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// runBin runs the binary with args and exactly the given LAMBDALOG_*
// environment (the test process's own LAMBDALOG_* variables are dropped).
func runBin(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(lambdalogBin(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	default:
		t.Fatalf("run lambdalog %v: %v", args, err)
		return -1, ""
	}
}

// mountedPath matches the absolute paths a shipped configuration expects
// the deployment to mount (secret files, CA bundles, keytabs).
var mountedPath = regexp.MustCompile(`(/run/secrets/|/etc/lambdalog/)[A-Za-z0-9._/-]+`)

// staged is a shipped configuration copied into a temporary root, with every
// file it references created there, so `config check` (which opens them) can
// run on a machine that is not the deployment.
type staged struct {
	file string   // the rewritten configuration
	refs []string // the absolute paths it references, as shipped
	root string
	cfg  *config.Config
}

func stage(t *testing.T, shipped string, withFiles bool) staged {
	t.Helper()
	data, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var refs []string
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i] // comments may mention paths; only values count
		}
		refs = append(refs, mountedPath.FindAllString(l, -1)...)
	}
	refs = uniq(refs)
	for _, r := range refs {
		if withFiles {
			p := filepath.Join(root, r)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("placeholder\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	rewritten := string(data)
	for _, r := range refs {
		rewritten = strings.ReplaceAll(rewritten, r, filepath.Join(root, r))
	}
	file := filepath.Join(root, "lambdalog.yaml")
	if err := os.WriteFile(file, []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}
	s := staged{file: file, refs: refs, root: root}
	if withFiles {
		if s.cfg, err = (config.Loader{File: file}).Load(); err != nil {
			t.Fatalf("%s: %v", shipped, err)
		}
	}
	return s
}

func uniq(in []string) []string {
	sort.Strings(in)
	return slices.Compact(in)
}

// decodeAll parses every YAML document of a file.
func decodeAll(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// get walks a decoded YAML tree: get(m, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, _ := yaml.Marshal(x)
		return strings.TrimSpace(string(b))
	}
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = str(x)
	}
	return out
}

// httpKey is the configuration key holding each service's HTTP address,
// where /healthz, /readyz and /metrics are served.
func httpPort(t *testing.T, cfg *config.Config, subcommand string) string {
	t.Helper()
	addr := map[string]string{"consume": cfg.Consumer.HTTP, "realtime": cfg.Realtime.HTTP, "serve": cfg.Serve.Listen, "batch": cfg.Batch.HTTP}[subcommand]
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s address %q: %v", subcommand, addr, err)
	}
	return port
}

// replaceConfigFlag swaps the in-container config path for the staged one.
func replaceConfigFlag(t *testing.T, args []string, want, staged string) []string {
	t.Helper()
	out := slices.Clone(args)
	i := slices.Index(out, "--config")
	if i < 0 || i+1 >= len(out) || out[i+1] != want {
		t.Fatalf("command %q does not pass --config %s", args, want)
	}
	out[i+1] = staged
	return out
}

// --- every YAML parses ---------------------------------------------------

func TestEveryYAMLParses(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "secrets" {
			return filepath.SkipDir // generated, not shipped
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			if docs := decodeAll(t, path); len(docs) == 0 {
				t.Errorf("%s has no YAML document", path)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("found %d YAML files under deploy/, expected the Compose, config and Kubernetes files", n)
	}
}

// --- shipped configurations ----------------------------------------------

var shippedConfigs = []string{"config/lambdalog.yaml", "kubernetes/config/lambdalog.yaml"}

func TestShippedConfigsPassConfigCheck(t *testing.T) {
	for _, c := range shippedConfigs {
		t.Run(c, func(t *testing.T) {
			s := stage(t, c, true)
			code, out := runBin(t, nil, "config", "check", "--config", s.file)
			if code != 0 || !strings.Contains(out, "ok: "+s.file+" is valid") {
				t.Fatalf("lambdalog config check %s: exit %d\n%s", c, code, out)
			}
			// Secrets are files, never values in the configuration.
			if s.cfg.Kafka.SASL.Password != "" || s.cfg.Serve.Token != "" || s.cfg.Realtime.WebhookToken != "" ||
				s.cfg.Realtime.HTTPToken != "" || s.cfg.Metrics.Token != "" {
				t.Errorf("%s holds a secret value; use the *_file keys or the environment", c)
			}
			if u, err := url.Parse(s.cfg.ClickHouse.DSN.Reveal()); err != nil {
				t.Errorf("%s: clickhouse.dsn: %v", c, err)
			} else if _, has := u.User.Password(); has {
				t.Errorf("%s: clickhouse.dsn carries a password; it belongs in LAMBDALOG_CLICKHOUSE_DSN", c)
			}
			if s.cfg.Serve.InsecureNoAuth || s.cfg.Kafka.TLS.InsecureSkipVerify {
				t.Errorf("%s turns off authentication or certificate checks", c)
			}

			// The control: without the mounted files the same check fails,
			// naming the key, so the test above is not vacuous.
			bare := stage(t, c, false)
			code, out = runBin(t, nil, "config", "check", "--config", bare.file)
			if code != 2 || !strings.Contains(out, "password_file") {
				t.Fatalf("config check without the secret files: exit %d, want 2 naming password_file\n%s", code, out)
			}
		})
	}
}

// --- Dockerfile vs Makefile ------------------------------------------------

// shellWords splits a shell command line, honouring quotes and
// backslash-newline continuations (enough for Makefile and Dockerfile lines).
func shellWords(s string) []string {
	s = strings.ReplaceAll(s, "\\\n", " ")
	var (
		words []string
		cur   strings.Builder
		quote rune
		in    bool
	)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// goBuild is what a `go build` line builds: environment, flags, ldflags and
// the package, with version stamps reduced to a placeholder.
type goBuild struct {
	Env     []string
	Flags   []string
	LDFlags []string
	Package string
}

var versionRef = regexp.MustCompile(`\$[({]VERSION[)}]`)

func parseGoBuild(t *testing.T, words []string) goBuild {
	t.Helper()
	var b goBuild
	i := slices.Index(words, "go")
	if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
		t.Fatalf("not a go build command: %q", words)
	}
	for _, w := range words[:i] {
		if strings.Contains(w, "=") {
			b.Env = append(b.Env, w)
		}
	}
	rest := words[i+2:]
	for j := 0; j < len(rest); j++ {
		w := rest[j]
		switch {
		case w == "-ldflags" && j+1 < len(rest):
			j++
			b.LDFlags = strings.Fields(versionRef.ReplaceAllString(rest[j], "VERSION"))
		case w == "-o" && j+1 < len(rest):
			j++ // output paths differ by design
		case strings.HasPrefix(w, "-"):
			b.Flags = append(b.Flags, w)
		default:
			b.Package = w
		}
	}
	sort.Strings(b.Env)
	sort.Strings(b.Flags)
	return b
}

func TestDockerfileBuildsLikeMakeBuild(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	var recipe string
	lines := strings.Split(string(mk), "\n")
	for i, l := range lines {
		if k, v, ok := strings.Cut(l, ":="); ok && !strings.ContainsAny(strings.TrimSpace(k), " \t") {
			vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		if strings.HasPrefix(l, "build:") {
			for _, r := range lines[i+1:] {
				if !strings.HasPrefix(r, "\t") {
					break
				}
				if strings.Contains(r, " build ") {
					recipe = strings.TrimSpace(r)
				}
			}
		}
	}
	if recipe == "" || vars["LDFLAGS"] == "" {
		t.Fatalf("Makefile: no build recipe or LDFLAGS found")
	}
	recipe = strings.ReplaceAll(recipe, "$(GO)", "go")
	recipe = strings.ReplaceAll(recipe, "$(LDFLAGS)", vars["LDFLAGS"])
	recipe = strings.ReplaceAll(recipe, "$(BIN)", vars["BIN"])
	want := parseGoBuild(t, shellWords(recipe))

	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(df), "\\\n", " ")
	var got *goBuild
	var stages, users []string
	var entrypoint string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "RUN ") && strings.Contains(l, "/out/lambdalog"):
			// the part of the RUN line that is the go build command
			cmd := l[strings.Index(l, "CGO_ENABLED"):]
			b := parseGoBuild(t, shellWords(cmd))
			got = &b
		case strings.HasPrefix(l, "FROM "):
			stages = append(stages, l)
		case strings.HasPrefix(l, "USER "):
			users = append(users, strings.TrimPrefix(l, "USER "))
		case strings.HasPrefix(l, "ENTRYPOINT "):
			entrypoint = l
		case strings.HasPrefix(l, "HEALTHCHECK"):
			t.Errorf("Dockerfile has a HEALTHCHECK; orchestrators probe /healthz and /readyz")
		}
	}
	if got == nil {
		t.Fatal("Dockerfile: no RUN line builds /out/lambdalog")
	}
	if !equalBuild(*got, want) {
		t.Errorf("Dockerfile builds %+v\nmake build builds %+v", *got, want)
	}
	if want.Package != "./cmd/lambdalog" || !slices.Contains(want.Env, "CGO_ENABLED=0") || !slices.Contains(want.Flags, "-trimpath") {
		t.Errorf("unexpected make build: %+v", want)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile is not multi-stage: %q", stages)
	}
	final := stages[len(stages)-1]
	if !strings.Contains(final, "distroless/static") && !strings.Contains(final, "scratch") {
		t.Errorf("final stage %q is not distroless static or scratch", final)
	}
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1], "0") || strings.HasPrefix(users[len(users)-1], "root") {
		t.Errorf("final image user %q is root", users)
	}
	if !strings.Contains(entrypoint, "/usr/local/bin/lambdalog") {
		t.Errorf("ENTRYPOINT %q does not run lambdalog", entrypoint)
	}
}

func equalBuild(a, b goBuild) bool {
	return slices.Equal(a.Env, b.Env) && slices.Equal(a.Flags, b.Flags) && slices.Equal(a.LDFlags, b.LDFlags) && a.Package == b.Package
}

// --- Compose -----------------------------------------------------------------

// secretLike names variables that carry credentials.
var secretLike = regexp.MustCompile(`PASSWORD|TOKEN|SECRET|DSN`)

// interpolation matches ${VAR}, ${VAR:-default} and ${VAR:?message}.
var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?[-?])?([^}]*)\}`)

// interpolate fills Compose variables the way `docker compose` would with a
// generated .env: required ones get a URL-safe dummy, defaulted ones their default.
func interpolate(s string) string {
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		p := interpolation.FindStringSubmatch(m)
		if strings.HasSuffix(p[2], "-") {
			return p[3]
		}
		return "dummy0" + strings.ToLower(p[1])
	})
}

func TestComposeServices(t *testing.T) {
	docs := decodeAll(t, "compose/compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("compose.yaml has %d documents", len(docs))
	}
	c := docs[0]
	services, _ := c["services"].(map[string]any)
	shipped := "config/lambdalog.yaml"
	s := stage(t, shipped, true)
	if src := str(get(c, "configs", "lambdalog", "file")); filepath.Clean(filepath.Join("compose", src)) != filepath.Clean(shipped) {
		t.Fatalf("compose config lambdalog is %q, want ../%s", src, shipped)
	}
	secretFiles := map[string]string{}
	for name, v := range c["secrets"].(map[string]any) {
		f := str(get(v, "file"))
		secretFiles[name] = f
		if !strings.HasPrefix(f, "./secrets/") {
			t.Errorf("secret %s comes from %q, outside the generated (git-ignored) ./secrets", name, f)
		}
	}
	ignore, _ := os.ReadFile("compose/.gitignore")
	if !strings.Contains(string(ignore), "/secrets/") || !strings.Contains(string(ignore), "/.env") {
		t.Errorf("compose/.gitignore must keep ./secrets and .env out of git")
	}

	// The infrastructure the brief names.
	count := func(image string) int {
		n := 0
		for _, v := range services {
			if strings.HasPrefix(str(get(v, "image")), image) && get(v, "restart") != "no" {
				n++
			}
		}
		return n
	}
	if n := count("apache/kafka:"); n != 3 {
		t.Errorf("%d Kafka brokers, want 3", n)
	}
	if n := count("apache/hadoop:"); n != 3 {
		t.Errorf("%d long-running Hadoop containers, want a NameNode and 2 DataNodes", n)
	}
	if n := count("clickhouse/clickhouse-server:"); n != 1 {
		t.Errorf("%d ClickHouse servers, want 1", n)
	}
	for _, name := range []string{"kafka-1", "kafka-2", "kafka-3", "namenode", "datanode-1", "datanode-2", "clickhouse"} {
		if get(services, name, "healthcheck", "test") == nil {
			t.Errorf("%s has no health check", name)
		}
		if get(services, name, "environment", "KAFKA_PROCESS_ROLES") == nil && strings.HasPrefix(name, "kafka-") {
			t.Errorf("%s is not a KRaft node", name)
		}
	}
	if str(get(services, "kafka-init", "restart")) != "no" || get(services, "kafka-init", "depends_on", "kafka-3", "condition") != "service_healthy" {
		t.Errorf("kafka-init is not a one-shot job after the brokers are healthy")
	}

	// lambdalog's services, their instances and command lines.
	want := map[string]int{"realtime": 2, "consume": 2, "batch": 1, "serve": 1}
	got := map[string]int{}
	for name, v := range services {
		if str(get(v, "build", "dockerfile")) != "deploy/Dockerfile" {
			continue
		}
		n := 1
		if r := get(v, "deploy", "replicas"); r != nil {
			n = r.(int)
		}
		got[name] = n
		t.Run(name, func(t *testing.T) {
			checkComposeService(t, name, v, s, secretFiles)
		})
	}
	if !equalCounts(got, want) {
		t.Errorf("lambdalog services %v, want %v", got, want)
	}

	// Inline secrets: a variable that looks like a secret must come from
	// the environment (.env), not be written in the file.
	for name, v := range services {
		env, _ := get(v, "environment").(map[string]any)
		for k, val := range env {
			if secretLike.MatchString(k) && !strings.Contains(str(val), "${") {
				t.Errorf("%s: %s is written inline; take it from .env or a secret file", name, k)
			}
		}
	}

	checkKafkaInit(t, s.cfg)
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func checkComposeService(t *testing.T, name string, v any, s staged, secretFiles map[string]string) {
	cmd := strs(get(v, "command"))
	if len(cmd) == 0 {
		t.Fatal("no command")
	}
	if target := str(get(v, "configs", 0, "target")); target != "/etc/lambdalog/lambdalog.yaml" {
		t.Fatalf("config mounted at %q", target)
	}
	args := replaceConfigFlag(t, cmd, "/etc/lambdalog/lambdalog.yaml", s.file)
	env := map[string]string{}
	if m, ok := get(v, "environment").(map[string]any); ok {
		for k, val := range m {
			env[k] = interpolate(str(val))
		}
	}
	code, out := runBin(t, env, append(args, "--validate-only")...)
	if code != 0 || !strings.Contains(out, "ok: lambdalog "+cmd[0]) {
		t.Fatalf("lambdalog %s --validate-only: exit %d\n%s", strings.Join(cmd, " "), code, out)
	}
	// The effective configuration must be the one the service means to run
	// with (environment included), and valid.
	code, out = runBin(t, env, "config", "check", "--config", s.file)
	if code != 0 {
		t.Fatalf("config check with %s's environment: exit %d\n%s", name, code, out)
	}
	requireHTTPAuth(t, s, env, cmd[0])

	// Every file the configuration names is mounted.
	mounted := map[string]bool{"/etc/lambdalog/lambdalog.yaml": true}
	for _, sec := range strs(get(v, "secrets")) {
		if _, ok := secretFiles[sec]; !ok {
			t.Errorf("secret %s is not declared", sec)
		}
		mounted["/run/secrets/"+sec] = true
	}
	for _, r := range s.refs {
		if !mounted[r] {
			t.Errorf("the configuration reads %s, which %s does not mount", r, name)
		}
	}

	if str(get(v, "user")) == "" || strings.HasPrefix(str(get(v, "user")), "0") || get(v, "read_only") != true {
		t.Errorf("not a non-root, read-only container: user %q read_only %v", get(v, "user"), get(v, "read_only"))
	}

	if cmd[0] == "batch" && (len(cmd) < 2 || cmd[1] != "schedule") {
		t.Errorf("batch service runs %q, want batch schedule", cmd)
	}
	probe := strs(get(v, "healthcheck", "test"))
	wantURL := "http://127.0.0.1:" + httpPort(t, s.cfg, cmd[0]) + "/readyz"
	if len(probe) < 3 || probe[1] != "/usr/local/bin/healthprobe" || probe[len(probe)-1] != wantURL {
		t.Errorf("health check %q, want healthprobe %s", probe, wantURL)
	}
}

// checkKafkaInit keeps the topic job in step with the configuration: the
// topics it creates, their partition count and the groups it grants.
func checkKafkaInit(t *testing.T, cfg *config.Config) {
	t.Helper()
	script, err := os.ReadFile("compose/kafka-init.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`TOPICS=\(([^)]*)\)`).FindSubmatch(script)
	if m == nil {
		t.Fatal("kafka-init.sh: no TOPICS=(...)")
	}
	topics := strings.Fields(string(m[1]))
	if want := cfg.Topics.All(); !slices.Equal(topics, want) {
		t.Errorf("kafka-init.sh creates %q, the configuration uses %q", topics, want)
	}
	if !strings.Contains(string(script), "PARTITIONS=${PARTITIONS:-"+itoa(cfg.Topics.Partitions)+"}") {
		t.Errorf("kafka-init.sh's default partition count differs from topics.partitions %d", cfg.Topics.Partitions)
	}
	for _, g := range []string{cfg.Consumer.Group, cfg.Realtime.Group} {
		if !strings.Contains(string(script), "--group "+g) {
			t.Errorf("kafka-init.sh grants no READ on group %s", g)
		}
	}
	if !strings.Contains(string(script), "--entity-name "+cfg.Kafka.SASL.Username) || !strings.Contains(string(script), cfg.Kafka.SASL.Mechanism+"=[") {
		t.Errorf("kafka-init.sh does not create the %s credential of %s", cfg.Kafka.SASL.Mechanism, cfg.Kafka.SASL.Username)
	}
}

func itoa(n int) string {
	b, _ := yaml.Marshal(n)
	return strings.TrimSpace(string(b))
}

// --- Kubernetes -----------------------------------------------------------------

func TestKubernetesManifests(t *testing.T) {
	kust := decodeAll(t, "kubernetes/kustomization.yaml")[0]
	resources := strs(kust["resources"])
	files, _ := filepath.Glob("kubernetes/*.yaml")
	var onDisk []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			onDisk = append(onDisk, b)
		}
	}
	if !slices.Equal(uniq(slices.Clone(resources)), uniq(onDisk)) {
		t.Errorf("kustomization resources %q, manifests on disk %q", resources, onDisk)
	}
	gen := strs(get(kust, "configMapGenerator", 0, "files"))
	if len(gen) != 1 || gen[0] != "lambdalog.yaml=config/lambdalog.yaml" {
		t.Fatalf("configMapGenerator files %q", gen)
	}
	s := stage(t, "kubernetes/config/lambdalog.yaml", true)

	var objs []map[string]any
	for _, r := range resources {
		objs = append(objs, decodeAll(t, filepath.Join("kubernetes", r))...)
	}
	byKind := map[string]map[string]map[string]any{}
	for _, o := range objs {
		kind, name := str(o["kind"]), str(get(o, "metadata", "name"))
		if byKind[kind] == nil {
			byKind[kind] = map[string]map[string]any{}
		}
		byKind[kind][name] = o
	}
	want := map[string]string{"lambdalog-consume": "consume", "lambdalog-realtime": "realtime", "lambdalog-serve": "serve", "lambdalog-batch": "batch"}
	for name := range byKind["Deployment"] {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected Deployment %s", name)
		}
	}
	for name, sub := range want {
		d := byKind["Deployment"][name]
		if d == nil {
			t.Errorf("no Deployment %s", name)
			continue
		}
		t.Run(name, func(t *testing.T) { checkDeployment(t, d, sub, s, byKind["PodDisruptionBudget"]) })
	}
}

func checkDeployment(t *testing.T, d map[string]any, sub string, s staged, pdbs map[string]map[string]any) {
	pod := get(d, "spec", "template", "spec")
	containers, _ := get(pod, "containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	c := containers[0]
	args := strs(get(c, "args"))
	if len(args) == 0 || args[0] != sub {
		t.Fatalf("args %q do not run lambdalog %s", args, sub)
	}

	// The command line and its environment against the shipped config.
	env := map[string]string{}
	for _, e := range get(c, "env").([]any) {
		k := str(get(e, "name"))
		if v := get(e, "value"); v != nil {
			if secretLike.MatchString(k) {
				t.Errorf("%s is written inline; take it from a Secret", k)
			}
			env[k] = str(v)
			continue
		}
		if get(e, "valueFrom", "secretKeyRef") == nil {
			t.Errorf("env %s comes from neither a value nor a Secret", k)
		}
		env[k] = "clickhouse://lambdalog:dummy@clickhouse.example:9000/lambdalog" // the Secret's shape
		if strings.Contains(k, "DSN") && str(get(e, "valueFrom", "secretKeyRef", "key")) != "clickhouse-dsn" {
			t.Errorf("%s from Secret key %v", k, get(e, "valueFrom", "secretKeyRef", "key"))
		}
	}
	full := replaceConfigFlag(t, args, "/etc/lambdalog/lambdalog.yaml", s.file)
	code, out := runBin(t, env, append(full, "--validate-only")...)
	if code != 0 || !strings.Contains(out, "ok: lambdalog "+sub) {
		t.Fatalf("lambdalog %s --validate-only: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	requireHTTPAuth(t, s, env, sub)

	// Every file the configuration reads is mounted.
	var mounts []string
	for _, m := range get(c, "volumeMounts").([]any) {
		mounts = append(mounts, str(get(m, "mountPath")))
	}
	for _, r := range append([]string{"/etc/lambdalog/lambdalog.yaml"}, s.refs...) {
		ok := false
		for _, m := range mounts {
			if r == m || strings.HasPrefix(r, m+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the configuration reads %s; volume mounts are %q", r, mounts)
		}
	}

	// Resources and the security context.
	for _, k := range []string{"requests", "limits"} {
		for _, r := range []string{"cpu", "memory"} {
			if str(get(c, "resources", k, r)) == "" {
				t.Errorf("no resources.%s.%s", k, r)
			}
		}
	}
	if get(pod, "securityContext", "runAsNonRoot") != true || get(c, "securityContext", "runAsNonRoot") != true {
		t.Errorf("runAsNonRoot is not set on the pod and container")
	}
	if uid, _ := get(pod, "securityContext", "runAsUser").(int); uid == 0 {
		t.Errorf("runAsUser %v", get(pod, "securityContext", "runAsUser"))
	}
	if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Errorf("container securityContext %v: want a read-only root fs and no privilege escalation", get(c, "securityContext"))
	}
	if !slices.Contains(strs(get(c, "securityContext", "capabilities", "drop")), "ALL") {
		t.Errorf("capabilities are not dropped")
	}

	if sub == "batch" {
		if get(d, "spec", "replicas") != 1 || str(get(d, "spec", "strategy", "type")) != "Recreate" {
			t.Errorf("the scheduler must be one replica with strategy Recreate: replicas %v strategy %v", get(d, "spec", "replicas"), get(d, "spec", "strategy"))
		}
		if len(args) < 2 || args[1] != "schedule" {
			t.Errorf("scheduler args %q", args)
		}
	}

	// Probes on the service's HTTP port, the one its configuration listens on.
	port := httpPort(t, s.cfg, sub)
	var named string
	for _, p := range get(c, "ports").([]any) {
		if str(get(p, "containerPort")) == port {
			named = str(get(p, "name"))
		}
	}
	if named == "" {
		t.Fatalf("no containerPort %s (from the configuration)", port)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if got := str(get(c, probe, "httpGet", "path")); got != path {
			t.Errorf("%s path %q, want %s", probe, got, path)
		}
		if got := str(get(c, probe, "httpGet", "port")); got != named && got != port {
			t.Errorf("%s port %q, want %s (%s)", probe, got, named, port)
		}
	}
	ann := get(d, "spec", "template", "metadata", "annotations")
	if str(get(ann, "prometheus.io/scrape")) != "true" || str(get(ann, "prometheus.io/port")) != port || str(get(ann, "prometheus.io/path")) != "/metrics" {
		t.Errorf("Prometheus annotations %v, want scrape on %s/metrics", ann, port)
	}
	if sub == "batch" {
		return // one replica by design: no PDB
	}
	labels := get(d, "spec", "template", "metadata", "labels").(map[string]any)
	covered := false
	for _, p := range pdbs {
		sel, _ := get(p, "spec", "selector", "matchLabels").(map[string]any)
		match := len(sel) > 0
		for k, v := range sel {
			if labels[k] != v {
				match = false
			}
		}
		if match {
			covered = true
		}
	}
	if !covered {
		t.Errorf("no PodDisruptionBudget selects %v", labels)
	}
	if r, _ := get(d, "spec", "replicas").(int); r < 2 {
		t.Errorf("%d replicas; a PDB over one replica blocks node drains or protects nothing", r)
	}
}

// --- scripts -------------------------------------------------------------------

func TestScriptsParse(t *testing.T) {
	for _, f := range []string{"compose/gen-secrets.sh", "compose/kafka-init.sh"} {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
}

// TestGenSecrets runs gen-secrets.sh in a copy of the compose directory: it
// must write every secret compose.yaml mounts and the .env it interpolates,
// keep them on a rerun (rotation is explicit), and agree with itself (the
// brokers' JAAS file and the admin client share one password).
func TestGenSecrets(t *testing.T) {
	dir := t.TempDir()
	script, err := os.ReadFile("compose/gen-secrets.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gen-secrets.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	gen := func() {
		if out, err := exec.Command("bash", filepath.Join(dir, "gen-secrets.sh")).CombinedOutput(); err != nil {
			t.Fatalf("gen-secrets.sh: %v\n%s", err, out)
		}
	}
	gen()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	compose := decodeAll(t, "compose/compose.yaml")[0]
	for name, v := range compose["secrets"].(map[string]any) {
		if strings.TrimSpace(read(str(get(v, "file")))) == "" {
			t.Errorf("secret %s (%s) is empty", name, str(get(v, "file")))
		}
	}
	env := read(".env")
	for _, m := range interpolation.FindAllStringSubmatch(readString(t, "compose/compose.yaml"), -1) {
		if strings.HasSuffix(m[2], "?") && !strings.Contains(env, m[1]+"=") {
			t.Errorf(".env lacks %s, which compose.yaml requires", m[1])
		}
	}
	if id := regexp.MustCompile(`KAFKA_CLUSTER_ID=([A-Za-z0-9_-]+)\n`).FindStringSubmatch(env); id == nil || len(id[1]) != 22 {
		t.Errorf("KAFKA_CLUSTER_ID in %q is not a 22-character base64url id", env)
	}
	admin := strings.TrimSpace(read("secrets/kafka_admin_password"))
	if len(admin) < 32 || !strings.Contains(read("secrets/kafka_server_jaas.conf"), `user_admin="`+admin+`"`) ||
		!strings.Contains(read("secrets/kafka_admin_client.properties"), `password="`+admin+`"`) {
		t.Errorf("the JAAS file and the admin client do not share the generated admin password")
	}
	if fi, err := os.Stat(filepath.Join(dir, "secrets")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("secrets directory mode %v, want 0700", fi.Mode().Perm())
	}

	before := read("secrets/kafka_lambdalog_password") + read(".env")
	gen()
	if after := read("secrets/kafka_lambdalog_password") + read(".env"); after != before {
		t.Errorf("rerunning gen-secrets.sh changed existing secrets")
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
