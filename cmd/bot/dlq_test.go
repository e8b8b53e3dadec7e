package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDLQCommandsReachTheRunningBot runs bot dlq list, purge and a refused
// redrive against a running bot's embedded NATS server, by --nats.url.
func TestDLQCommandsReachTheRunningBot(t *testing.T) {
	t.Parallel()
	a := startBot(t)
	url := a.bus.Conn.ConnectedUrl()
	tests := []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{[]string{"dlq", "list", "--nats.url", url}, "0 dead letter(s)", false},
		{[]string{"dlq", "purge", "--nats.url", url}, "purged 0 dead letter(s)", false},
		{[]string{"dlq", "show", "--nats.url", url, "x"}, "", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, nil, &stdout, &stderr)
			if (err != nil) != tt.wantErr || !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("got %v, stdout %q, stderr %q; want error %v and %q", err, stdout.String(), stderr.String(), tt.wantErr, tt.want)
			}
		})
	}
}
