package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/ingest"
)

func loadTestConfig(t *testing.T, yaml string, environ ...string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bot.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	configFlags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	return loadConfig(fs, environ)
}

func TestConfigSources(t *testing.T) {
	t.Parallel()
	cfg, err := loadTestConfig(t, `
sources:
  shop:
    kind: generic
    allow_ips: [203.0.113.0/24, 198.51.100.7]
    signature:
      header: X-Sig
      algorithm: sha512
      timestamp_header: X-Ts
      tolerance: 2m
    type: body.topic
    id: headers["X-Delivery-Id"]
`, "BOT_SOURCES__SHOP__SECRET=from-env")
	if err != nil {
		t.Fatal(err)
	}
	want := ingest.SourceConfig{
		Kind:      "generic",
		AllowIPs:  []string{"203.0.113.0/24", "198.51.100.7"},
		Secret:    "from-env",
		Signature: ingest.SignatureConfig{Header: "X-Sig", Algorithm: "sha512", TimestampHeader: "X-Ts", Tolerance: 120e9},
		Type:      "body.topic",
		ID:        `headers["X-Delivery-Id"]`,
	}
	if diff := cmp.Diff(want, cfg.Sources["shop"]); diff != "" {
		t.Errorf("sources.shop (-want +got):\n%s", diff)
	}
	if s := fmt.Sprintf("%v %+v", cfg.Sources, cfg.Sources); strings.Contains(s, "from-env") {
		t.Errorf("printing the config shows the secret: %s", s)
	}
}

func TestConfigSourceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml, err string }{
		{"unknown key", "sources:\n  shop:\n    kind: generic\n    sekret: x\n", `unknown config key "sources.shop.sekret"`},
		{"bad expression", "sources:\n  shop:\n    kind: generic\n    type: body.(\n", "sources.shop.type: "},
		{"bad algorithm", "sources:\n  shop:\n    kind: generic\n    secret: x\n    signature: {header: X, algorithm: md5}\n", "sources.shop.signature.algorithm: want sha1, sha256 or sha512"},
		{"bad cidr", "sources:\n  c:\n    kind: comm100\n    allow_ips: [10.0.0.0/40]\n", "sources.c.allow_ips:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadTestConfig(t, tt.yaml)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("got %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

// TestDeployExampleConfigLoads keeps deploy/bot.example.yaml valid.
func TestDeployExampleConfigLoads(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	configFlags(fs)
	if err := fs.Parse([]string{"--config", "../../deploy/bot.example.yaml"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(fs, []string{"BOT_COMM100__API_KEY=k", "BOT_SOURCES__SHOP__SECRET=s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Comm100.Domain != "dash11.comm100.io" || cfg.Sources["shop"].Kind != "generic" {
		t.Errorf("example config read as %+v", cfg)
	}
}

// TestDedupWindowCoversSignatureTolerance: a signed request passes its
// check until its timestamp is older than the tolerance (and a timestamp may
// be ahead of the clock by as much), so the duplicate window is raised to
// twice the longest tolerance; a longer configured window stays.
func TestDedupWindowCoversSignatureTolerance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       time.Duration
		raisedFor  string
	}{
		{"default comm100 source", "{}", 2 * time.Minute, ""},
		{"github signs no timestamp", "sources:\n  gh: {kind: generic, preset: github, secret: s}\n", 2 * time.Minute, ""},
		{"stripe", "sources:\n  pay: {kind: generic, preset: stripe, secret: s}\n", 10 * time.Minute, "pay"},
		{"hmac with a tolerance", "sources:\n  shop: {kind: generic, secret: s, signature: {header: X-S, timestamp_header: X-T, tolerance: 7m}}\n", 14 * time.Minute, "shop"},
		{"a longer window stays", "nats: {dedup_window: 1h}\nsources:\n  pay: {kind: generic, preset: stripe, secret: s}\n", time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadTestConfig(t, tt.yaml)
			if err != nil {
				t.Fatal(err)
			}
			raisedFor := cfg.coverReplays()
			if cfg.NATS.DedupWindow != tt.want || raisedFor != tt.raisedFor {
				t.Errorf("dedup window %s raised for %q, want %s for %q", cfg.NATS.DedupWindow, raisedFor, tt.want, tt.raisedFor)
			}
		})
	}

	// The running bot remembers event ids for the raised window.
	dir := t.TempDir()
	a := startBot(t, "--config", writeFile(t, dir, "bot.yaml", "sources:\n  pay: {kind: generic, preset: stripe, secret: whsec_x}\n"))
	s, err := a.bus.JS.Stream(t.Context(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := a.recent.Window(); got != 10*time.Minute {
		t.Errorf("event ids remembered for %s, want 10m", got)
	}
	// The stream itself keeps them briefly: each costs the collector.
	if got := info.Config.Duplicates; got != bus.MsgIDWindow {
		t.Errorf("EVENTS duplicate window %s, want %s", got, bus.MsgIDWindow)
	}
	// Job ids are not: the copies of a job that its event makes when it
	// comes back are refused by their subject, or stopped by the ledger.
	s, err = a.bus.JS.Stream(t.Context(), bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Duplicates; got != bus.MsgIDWindow {
		t.Errorf("ACTIONS duplicate window %s, want %s", got, bus.MsgIDWindow)
	}
}

// TestDeployReachesTheAdminListener: the deploy files probe the admin
// listener, which they bind for the probes, and publish only the webhook
// port.
func TestDeployReachesTheAdminListener(t *testing.T) {
	t.Parallel()
	read := func(name string) string {
		b, err := os.ReadFile("../../deploy/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	k8s := read("k8s/bot.yaml")
	for _, want := range []string{
		`{ name: BOT_HTTP__ADMIN_ADDR, value: ":8081" }`,
		"readinessProbe:\n            httpGet: { path: /readyz, port: admin }",
		"livenessProbe:\n            httpGet: { path: /healthz, port: admin }",
		"ports: [{ port: 80, targetPort: http, name: http }]",
	} {
		if !strings.Contains(k8s, want) {
			t.Errorf("k8s/bot.yaml lacks %q", want)
		}
	}
	compose := read("compose.yaml")
	for _, want := range []string{`BOT_HTTP__ADMIN_ADDR: ":8081"`, `"127.0.0.1:8091:8081"`, `"127.0.0.1:8092:8081"`} {
		if !strings.Contains(compose, want) {
			t.Errorf("compose.yaml lacks %q", want)
		}
	}
	if strings.Contains(compose, `"8081:8081"`) || strings.Contains(compose, `"0.0.0.0:`) {
		t.Errorf("compose.yaml publishes the admin port beyond the host's loopback")
	}
	if !strings.Contains(read("Dockerfile"), "EXPOSE 8080 8081") {
		t.Errorf("Dockerfile does not name the admin port")
	}
}

// A duration written as a bare number is refused, naming the key: YAML's
// `per: 300` would otherwise be 300 nanoseconds, and no budget at all.
func TestConfigRefusesBareNumberDurations(t *testing.T) {
	t.Parallel()
	for _, yaml := range []string{"comm100:\n  rate_limit:\n    per: 300\n", "dispatch:\n  retry_for: 86400.5\n"} {
		_, err := loadTestConfig(t, yaml)
		key := map[bool]string{true: "comm100.rate_limit.per", false: "dispatch.retry_for"}[strings.HasPrefix(yaml, "comm100")]
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "write a duration with its unit") {
			t.Errorf("%q: got %v, want an error naming %s", yaml, err, key)
		}
	}
	cfg, err := loadTestConfig(t, "comm100:\n  rate_limit:\n    per: 5m\n  timeout: 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Comm100.RateLimit.Per != 5*time.Minute {
		t.Errorf("per: got %s, want 5m", cfg.Comm100.RateLimit.Per)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	configFlags(fs)
	if err := fs.Parse([]string{"--comm100.rate_limit.per", "2m"}); err != nil {
		t.Fatal(err)
	}
	if cfg, err = loadConfig(fs, []string{"BOT_DISPATCH__RETRY_FOR=3h"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Comm100.RateLimit.Per != 2*time.Minute || cfg.Dispatch.RetryFor != 3*time.Hour {
		t.Errorf("from a flag and the environment: per %s, retry_for %s; want 2m, 3h", cfg.Comm100.RateLimit.Per, cfg.Dispatch.RetryFor)
	}
}

// Some Comm100 credentials without the others is an error naming the one
// missing, not a quiet dry run that would log every job and do none.
func TestConfigPartialCredentials(t *testing.T) {
	t.Parallel()
	check := func(yaml string, environ ...string) error {
		t.Helper()
		cfg, err := loadTestConfig(t, yaml, environ...)
		if err != nil {
			// Loading is for every command; only serve checks the credentials.
			t.Fatalf("load: %v", err)
		}
		return checkPartialCredentials(cfg)
	}
	partial := "comm100: {site_id: \"10000\", email: a@example.com}\n"
	if err := check(partial); err == nil || err.Error() != "config: comm100.api_key (or comm100.password) not set, while other Comm100 credentials are: set them all, none (to run dry), or dispatch.dry_run: true" {
		t.Errorf("got %v, want an error naming the missing key", err)
	}
	if err := check("comm100: {api_key: k}\n"); err == nil || !strings.Contains(err.Error(), "config: comm100.site_id and comm100.email not set") {
		t.Errorf("got %v, want both missing keys named", err)
	}
	if err := check("comm100: {domain: dash11.comm100.io, site_id: \"10000\", email: a@example.com}\n", "BOT_COMM100__API_KEY=k"); err != nil {
		t.Errorf("completed from the environment: %v", err)
	}
	if err := check(partial + "dispatch: {dry_run: true}\n"); err != nil {
		t.Errorf("with dispatch.dry_run: %v", err)
	}
	if err := check("comm100: {domain: dash11.comm100.io}\n"); err != nil {
		t.Errorf("no credentials at all (dry run): %v", err)
	}
}

// A section whose lines are all commented out is empty, not an unknown key.
func TestConfigEmptySections(t *testing.T) {
	t.Parallel()
	cfg, err := loadTestConfig(t, "comm100:\n  # site_id: \"10000\"\nsources: {}\nlog:\n  level: debug\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" || len(cfg.Sources) == 0 {
		t.Errorf("got log.level %q, %d sources; want debug and the default source", cfg.Log.Level, len(cfg.Sources))
	}
	if _, err := loadTestConfig(t, "comm100:\n  sekret: x\n"); err == nil || !strings.Contains(err.Error(), `unknown config key "comm100.sekret"`) {
		t.Errorf("an unknown key in a section: got %v", err)
	}
}

func TestConfigRefusesNegativeDispatchDurations(t *testing.T) {
	t.Parallel()
	_, err := loadTestConfig(t, "dispatch:\n  retry_for: -1h\n")
	if err == nil || !strings.Contains(err.Error(), "dispatch.retry_for: want a positive duration, got -1h0m0s") {
		t.Errorf("got %v", err)
	}
}

func TestConfigInFlightFollowsALargerBody(t *testing.T) {
	t.Parallel()
	cfg, err := loadTestConfig(t, "http:\n  max_body_bytes: 134217728\n")
	if err != nil || cfg.HTTP.MaxInFlightBytes != 134217728 {
		t.Fatalf("got %v, %+v", err, cfg)
	}
}
