package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSendSignsLikeTheSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	config := writeFile(t, dir, "bot.yaml", `
sources:
  comm100:
    kind: comm100
    token: t0k3n
  shop:
    kind: generic
    secret: shop-secret
    signature:
      header: X-Shop-Signature
      prefix: "sha256="
      timestamp_header: X-Shop-Timestamp
    type: body.topic
    id: headers["X-Shop-Delivery"]
  github:
    kind: generic
    preset: github
    secret: gh-secret
  forms:
    kind: generic
    bearer: forms-t0ken
    type: body.topic
    id: headers["X-Shop-Delivery"]
`)
	a := startBot(t, "--config", config)
	url := "http://" + a.Addr()
	order := writeFile(t, dir, "order.json", `{"topic":"order.paid","order":{"id":1}}`)
	issue := writeFile(t, dir, "issue.json", `{"action":"opened"}`)
	// The same file under another secret: what an attacker without it would send.
	wrong := writeFile(t, dir, "wrong.yaml", "sources:\n  shop:\n    kind: generic\n    secret: guess\n    signature:\n      header: X-Shop-Signature\n      prefix: \"sha256=\"\n      timestamp_header: X-Shop-Timestamp\n")

	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    string
	}{
		{"comm100 with token", []string{"--config", config, "comm100", "../../rules/testdata/chat_ended_low_rating.json"}, false, `202 Accepted` + "\n" + `{"id":"chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90"}`},
		{"generic hmac", []string{"--config", config, "--header", "X-Shop-Delivery: d-1", "shop", order}, false, `{"id":"d-1"}`},
		{"repeat", []string{"--config", config, "--header", "X-Shop-Delivery: d-1", "shop", order}, false, `200 OK` + "\n" + `{"duplicate":true,"id":"d-1"}`},
		// Another source's event with the same id is another event.
		{"the same id from another source", []string{"--config", config, "--header", "X-Shop-Delivery: d-1", "forms", order}, false, `202 Accepted` + "\n" + `{"id":"d-1"}`},
		{"its repeat", []string{"--config", config, "--header", "X-Shop-Delivery: d-1", "forms", order}, false, `200 OK` + "\n" + `{"duplicate":true,"id":"d-1"}`},
		{"github preset", []string{"--config", config, "--header", "X-GitHub-Event: issues", "--header", "X-GitHub-Delivery: g-1", "github", issue}, false, `202 Accepted` + "\n" + `{"id":"issues:`},
		// GitHub does not sign X-GitHub-Delivery: the same signed body under
		// another delivery id is a replay, and a duplicate.
		{"github replay under a new delivery id", []string{"--config", config, "--header", "X-GitHub-Event: issues", "--header", "X-GitHub-Delivery: g-2", "github", issue}, false, `200 OK` + "\n" + `{"duplicate":true,"id":"issues:`},
		{"github without the event header", []string{"--config", config, "github", issue}, true, `400 Bad Request` + "\n" + `{"error":"missing X-GitHub-Event header: the event type of source github comes from it"}`},
		{"wrong secret", []string{"--config", wrong, "shop", order}, true, `401 Unauthorized` + "\n" + `{"error":"X-Shop-Signature signature does not match the body"}`},
		{"unknown source", []string{"--config", config, "crm", order}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"send", "--url", url}, tt.args...), nil, &stdout, &stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error = %v\nstdout: %s\nstderr: %s", err, tt.wantErr, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tt.want)
			}
		})
	}
}

// TestSendErrorHidesTheToken: a failed post names the bot, not the token.
func TestSendErrorHidesTheToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "bot.yaml")
	if err := os.WriteFile(cfgFile, []byte("sources:\n  comm100:\n    kind: comm100\n    token: supersecrettoken123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body := filepath.Join(dir, "body.json")
	if err := os.WriteFile(body, []byte(`{"event":"chat_started","visitor":{"chat_id":1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err := run(t.Context(), []string{"send", "--url", "http://127.0.0.1:1", "--config", cfgFile, "comm100", body}, nil, &out, &out)
	if err == nil {
		t.Fatal("post to a closed port succeeded")
	}
	if strings.Contains(err.Error()+out.String(), "supersecrettoken123") {
		t.Errorf("the token leaked: %v\n%s", err, out.String())
	}
}
