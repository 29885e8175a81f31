package deploy

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lambdalog/lambdalog/internal/config"
)

// --- every HTTP API of the shipped deployments needs a token -----------------

// httpAuthProblems lists what `lambdalog sub` would serve without
// authentication under cfg: serve's API and dashboard (serve.token),
// the speed layer's API (realtime.http_token, which serve sends when it
// proxies the live views, so serve needs it too) and the metrics port of
// consume and batch schedule (metrics.token; their /healthz and /readyz
// stay open for the probes). A token file that cannot be read is a
// problem too: the service would not start.
func httpAuthProblems(cfg *config.Config, sub string) []string {
	var probs []string
	need := func(what string, tok string, err error) {
		switch {
		case err != nil:
			probs = append(probs, what+": "+err.Error())
		case tok == "":
			probs = append(probs, what+" is served without a token")
		}
	}
	switch sub {
	case "serve":
		tok, err := cfg.Serve.BearerToken()
		need("serve's API and dashboard (serve.token, token_file or LAMBDALOG_SERVE_TOKEN)", tok, err)
		if cfg.Serve.InsecureNoAuth {
			probs = append(probs, "serve.insecure_no_auth is on")
		}
		tok, err = cfg.Realtime.HTTPBearerToken()
		need("the speed layer's API that serve proxies (realtime.http_token, http_token_file or LAMBDALOG_REALTIME_HTTP_TOKEN)", tok, err)
	case "realtime":
		tok, err := cfg.Realtime.HTTPBearerToken()
		need("the speed layer's API on realtime.http (realtime.http_token, http_token_file or LAMBDALOG_REALTIME_HTTP_TOKEN)", tok, err)
	case "consume", "batch":
		addr := map[string]string{"consume": cfg.Consumer.HTTP, "batch": cfg.Batch.HTTP}[sub]
		if addr != "" {
			tok, err := cfg.Metrics.BearerToken()
			need(sub+"'s /metrics on "+addr+" (metrics.token, token_file or LAMBDALOG_METRICS_TOKEN)", tok, err)
		}
	default:
		probs = append(probs, "no rule for the HTTP servers of lambdalog "+sub+"; add one to httpAuthProblems")
	}
	return probs
}

// requireHTTPAuth loads the staged configuration with a service's
// environment, as the service would, and fails for every HTTP API it
// would leave open.
func requireHTTPAuth(t *testing.T, s staged, env map[string]string, sub string) {
	t.Helper()
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	cfg, err := config.Loader{File: s.file, Env: kv}.Load()
	if err != nil {
		t.Fatalf("load the configuration with the service's environment: %v", err)
	}
	for _, p := range httpAuthProblems(cfg, sub) {
		t.Errorf("lambdalog %s: %s", sub, p)
	}
}

// TestHTTPAuthCheckFindsOpenAPIs is the control of requireHTTPAuth: the
// shipped configurations pass, and the same configurations with any one
// token removed fail for exactly the services that serve it.
func TestHTTPAuthCheckFindsOpenAPIs(t *testing.T) {
	subs := []string{"serve", "realtime", "consume", "batch"}
	for _, c := range shippedConfigs {
		t.Run(c, func(t *testing.T) {
			s := stage(t, c, true)
			for _, sub := range subs {
				if p := httpAuthProblems(s.cfg, sub); len(p) > 0 {
					t.Errorf("shipped %s: %s: %q", c, sub, p)
				}
			}
			for _, k := range []struct {
				key   string
				clear func(*config.Config)
				open  []string
			}{
				{"serve.token_file", func(c *config.Config) { c.Serve.TokenFile = "" }, []string{"serve"}},
				{"realtime.http_token_file", func(c *config.Config) { c.Realtime.HTTPTokenFile = "" }, []string{"serve", "realtime"}},
				{"metrics.token_file", func(c *config.Config) { c.Metrics.TokenFile = "" }, []string{"consume", "batch"}},
			} {
				cfg := *s.cfg
				k.clear(&cfg)
				var open []string
				for _, sub := range subs {
					if len(httpAuthProblems(&cfg, sub)) > 0 {
						open = append(open, sub)
					}
				}
				if !slices.Equal(open, k.open) {
					t.Errorf("without %s the check flags %q, want %q", k.key, open, k.open)
				}
			}
			cfg := *s.cfg
			cfg.Serve.InsecureNoAuth = true
			if len(httpAuthProblems(&cfg, "serve")) == 0 {
				t.Error("serve.insecure_no_auth is not flagged")
			}
		})
	}
}

// --- Prometheus sends the metrics token -----------------------------------------

// TestComposePrometheusSendsMetricsToken checks the optional Prometheus of
// the Compose stack: it mounts the secret metrics.token_file names and
// scrapes every lambdalog service, on the port its configuration serves,
// with that file as its bearer token.
func TestComposePrometheusSendsMetricsToken(t *testing.T) {
	c := decodeAll(t, "compose/compose.yaml")[0]
	s := stage(t, "config/lambdalog.yaml", true)
	tokenFile := strings.TrimPrefix(s.cfg.Metrics.TokenFile, s.root) // as shipped
	secret, ok := strings.CutPrefix(tokenFile, "/run/secrets/")
	if !ok {
		t.Fatalf("metrics.token_file %q is not a Compose secret", tokenFile)
	}
	prom := get(c, "services", "prometheus")
	if prom == nil {
		t.Fatal("compose.yaml has no prometheus service")
	}
	if !slices.Contains(strs(get(prom, "secrets")), secret) {
		t.Errorf("prometheus does not mount the secret %s (metrics.token_file)", secret)
	}
	for _, p := range strs(get(prom, "ports")) {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("prometheus publishes %q beyond loopback", p)
		}
	}
	var promFile string
	for _, m := range get(prom, "configs").([]any) {
		if str(get(m, "target")) == "/etc/prometheus/prometheus.yml" {
			promFile = str(get(c, "configs", str(get(m, "source")), "file"))
		}
	}
	if promFile == "" || !slices.Contains(strs(get(prom, "command")), "--config.file=/etc/prometheus/prometheus.yml") {
		t.Fatalf("prometheus does not run with a mounted /etc/prometheus/prometheus.yml")
	}
	pc := decodeAll(t, filepath.Join("compose", promFile))[0]

	// Every scrape target (service name and port) and the token it sends.
	type target struct{ name, port string }
	sends := map[target]string{}
	for _, job := range get(pc, "scrape_configs").([]any) {
		cred := str(get(job, "authorization", "credentials_file"))
		if typ := str(get(job, "authorization", "type")); typ != "" && typ != "Bearer" {
			cred = ""
		}
		sds, _ := get(job, "dns_sd_configs").([]any)
		for _, sd := range sds {
			for _, n := range strs(get(sd, "names")) {
				sends[target{n, str(get(sd, "port"))}] = cred
			}
		}
	}
	n := 0
	for name, v := range get(c, "services").(map[string]any) {
		if str(get(v, "build", "dockerfile")) != "deploy/Dockerfile" {
			continue
		}
		n++
		port := httpPort(t, s.cfg, strs(get(v, "command"))[0])
		cred, scraped := sends[target{name, port}]
		switch {
		case !scraped:
			t.Errorf("prometheus does not scrape %s:%s", name, port)
		case cred != tokenFile:
			t.Errorf("prometheus scrapes %s:%s with bearer credentials_file %q, want %s (metrics.token_file)", name, port, cred, tokenFile)
		}
	}
	if n < 4 {
		t.Fatalf("found %d lambdalog services in compose.yaml", n)
	}
}

// selects reports whether a Kubernetes label selector (matchLabels and
// In expressions) selects labels.
func selects(sel any, labels map[string]any) bool {
	ml, _ := get(sel, "matchLabels").(map[string]any)
	exprs, _ := get(sel, "matchExpressions").([]any)
	if len(ml) == 0 && len(exprs) == 0 {
		return false
	}
	for k, v := range ml {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range exprs {
		if str(get(e, "operator")) != "In" || !slices.Contains(strs(get(e, "values")), str(labels[str(get(e, "key"))])) {
			return false
		}
	}
	return true
}

// TestKubernetesPrometheusSendsMetricsToken checks both shipped ways of
// scraping the Kubernetes deployment: the PodMonitor selects every pod
// that serves HTTP, on its named port and annotated path, with the
// metrics token from the Secret key the pods read metrics.token_file
// from; the hand-written scrape job keeps the annotated pods of the
// namespace and sends the same key as its bearer token.
func TestKubernetesPrometheusSendsMetricsToken(t *testing.T) {
	s := stage(t, "kubernetes/config/lambdalog.yaml", true)
	tokenFile := strings.TrimPrefix(s.cfg.Metrics.TokenFile, s.root) // as shipped
	key, ok := strings.CutPrefix(tokenFile, "/etc/lambdalog/secrets/")
	if !ok {
		t.Fatalf("metrics.token_file %q is not in the Secret mounted at /etc/lambdalog/secrets", tokenFile)
	}
	ns := str(decodeAll(t, "kubernetes/kustomization.yaml")[0]["namespace"])

	pm := decodeAll(t, "kubernetes/monitoring/podmonitor.yaml")[0]
	if str(pm["kind"]) != "PodMonitor" || str(get(pm, "metadata", "namespace")) != ns {
		t.Fatalf("podmonitor.yaml: kind %v namespace %v, want a PodMonitor in %s", pm["kind"], get(pm, "metadata", "namespace"), ns)
	}
	endpoints, _ := get(pm, "spec", "podMetricsEndpoints").([]any)
	if len(endpoints) == 0 {
		t.Fatal("the PodMonitor has no podMetricsEndpoints")
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	n := 0
	for _, f := range files {
		for _, d := range decodeAll(t, f) {
			if str(d["kind"]) != "Deployment" {
				continue
			}
			name := str(get(d, "metadata", "name"))
			c := get(d, "spec", "template", "spec", "containers", 0)
			ports, _ := get(c, "ports").([]any)
			if len(ports) == 0 {
				continue
			}
			n++
			labels, _ := get(d, "spec", "template", "metadata", "labels").(map[string]any)
			if !selects(get(pm, "spec", "selector"), labels) {
				t.Errorf("the PodMonitor does not select %s (pod labels %v)", name, labels)
				continue
			}
			var secretName string
			for _, v := range get(d, "spec", "template", "spec", "volumes").([]any) {
				if str(get(v, "name")) == "secrets" {
					secretName = str(get(v, "secret", "secretName"))
				}
			}
			path := str(get(d, "spec", "template", "metadata", "annotations", "prometheus.io/path"))
			matched := false
			for _, ep := range endpoints {
				if str(get(ep, "path")) != path || !slices.ContainsFunc(ports, func(p any) bool { return str(get(p, "name")) == str(get(ep, "port")) }) {
					continue
				}
				matched = true
				auth := get(ep, "authorization")
				if typ := str(get(auth, "type")); typ != "" && typ != "Bearer" {
					continue
				}
				if got := [2]string{str(get(auth, "credentials", "name")), str(get(auth, "credentials", "key"))}; got != [2]string{secretName, key} {
					t.Errorf("the PodMonitor scrapes %s with the token of Secret %s key %s, want %s key %s (metrics.token_file)", name, got[0], got[1], secretName, key)
				}
			}
			if !matched {
				t.Errorf("no PodMonitor endpoint scrapes %s's port (%v) on %s", name, ports, path)
			}
		}
	}
	if n < 4 {
		t.Fatalf("found %d Deployments serving HTTP, want consume, realtime, serve and batch", n)
	}

	sc := decodeAll(t, "kubernetes/monitoring/prometheus-scrape.yaml")[0]
	jobs, _ := get(sc, "scrape_configs").([]any)
	if len(jobs) != 1 {
		t.Fatalf("prometheus-scrape.yaml has %d jobs, want 1", len(jobs))
	}
	job := jobs[0]
	if cred := str(get(job, "authorization", "credentials_file")); filepath.Base(cred) != key {
		t.Errorf("the scrape job's credentials_file %q is not the Secret key %s", cred, key)
	}
	if !slices.Contains(strs(get(job, "kubernetes_sd_configs", 0, "namespaces", "names")), ns) {
		t.Errorf("the scrape job does not discover pods in the namespace %s", ns)
	}
	kept := false
	for _, r := range get(job, "relabel_configs").([]any) {
		if str(get(r, "action")) == "keep" && slices.Contains(strs(get(r, "source_labels")), "__meta_kubernetes_pod_annotation_prometheus_io_scrape") {
			kept = true
		}
	}
	if !kept {
		t.Error("the scrape job does not keep only the pods annotated prometheus.io/scrape")
	}
}

// regexpSecretKey finds the keys of lambdalog-secrets a manifest takes an
// environment variable from.
var regexpSecretKey = regexp.MustCompile(`secretKeyRef:\s*\{name:\s*lambdalog-secrets,\s*key:\s*([A-Za-z0-9._-]+)\s*\}`)

// TestKubernetesReadmeCreatesEverySecretKey: the README's kubectl command
// creates every key of lambdalog-secrets that the configuration reads or
// a manifest takes an environment variable from, so following it yields
// pods that start (a missing token file stops the service at start).
func TestKubernetesReadmeCreatesEverySecretKey(t *testing.T) {
	s := stage(t, "kubernetes/config/lambdalog.yaml", false)
	readme := readString(t, "kubernetes/README.md")
	keys := map[string]bool{}
	for _, r := range s.refs {
		if k, ok := strings.CutPrefix(r, "/etc/lambdalog/secrets/"); ok {
			keys[k] = true
		}
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		for _, m := range regexpSecretKey.FindAllStringSubmatch(readString(t, f), -1) {
			keys[m[1]] = true
		}
	}
	if len(keys) < 5 {
		t.Fatalf("found Secret keys %v; expected at least the Kafka password and CA, the DSN and three tokens", keys)
	}
	for k := range keys {
		if !strings.Contains(readme, "--from-file="+k+"=") && !strings.Contains(readme, "--from-literal="+k+"=") {
			t.Errorf("README.md's kubectl create secret does not create the key %s", k)
		}
	}
}
