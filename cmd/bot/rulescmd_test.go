package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesCheckRefusesADirWithoutRules: a wrong path must not pass CI: a
// directory without rule files, or one that does not exist, exits 1 naming it.
func TestRulesCheckRefusesADirWithoutRules(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	writeFile(t, empty, "notes.txt", "not a rule file")
	missing := filepath.Join(t.TempDir(), "nope")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"rules", "check", empty}, "rules: no rule files (*.yaml, *.yml) in " + empty},
		{[]string{"rules", "test", empty}, "rules: no rule files (*.yaml, *.yml) in " + empty},
		{[]string{"rules", "check", missing}, "rules: " + missing + " does not exist"},
		{[]string{"rules", "test", missing}, "rules: " + missing + " does not exist"},
		{[]string{"rules", "eval", "--event", "../../rules/testdata/chat_ended_low_rating.json", "--source", "comm100", "--rules", empty}, "no rule files"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " ")+" "+filepath.Base(tt.args[len(tt.args)-1]), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, nil, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v (stdout %q), want an error containing %q", err, stdout.String(), tt.want)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"rules", "check", "../../rules"}, nil, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "all valid") {
		t.Errorf("the shipped rules: got %v, %q", err, stdout.String()+stderr.String())
	}
}

// TestRulesEvalSaysWhatThePoolWouldRefuse: a matched rule whose rendered
// params the pool would refuse is shown with why.
func TestRulesEvalSaysWhatThePoolWouldRefuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "r.yaml", `rules:
  - name: note
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.note
        with: { ticket_id: "{{ data.chat.id }}", text: "ended" }
`)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"rules", "eval", "--event", "../../rules/testdata/chat_ended_low_rating.json", "--source", "comm100", "--rules", dir}, nil, &stdout, &stderr)
	if err != nil || !strings.Contains(stdout.String(), `REFUSED: the pool would refuse the rendered params: param "ticket_id"`) {
		t.Errorf("got %v:\n%s%s", err, stdout.String(), stderr.String())
	}
}
