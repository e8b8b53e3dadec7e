package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

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
