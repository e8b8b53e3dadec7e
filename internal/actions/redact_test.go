package actions

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/job"
)

func TestRedactParams(t *testing.T) {
	in := map[string]any{
		"url":     "https://hooks.slack.example/services/T0/B0/s3cretpath",
		"headers": map[string]any{"Authorization": "Bearer s3cret", "X-Api-Key": "k", "Accept": "application/json"},
		"body": []any{map[string]any{"password": "p", "name": "n",
			"callback_URL": "https://crm.example/cb?api_key=s3cret", "home": "https://crm.example/x"}},
		"token":    "t",
		"site_url": "https://crm.example/",
		"bad_url":  "https://user:pw@",
	}
	want := map[string]any{
		"url":     "https://hooks.slack.example/<redacted>",
		"headers": map[string]any{"Authorization": "<redacted>", "X-Api-Key": "<redacted>", "Accept": "application/json"},
		"body": []any{map[string]any{"password": "<redacted>", "name": "n",
			"callback_URL": "https://crm.example/<redacted>", "home": "https://crm.example/x"}},
		"token":    "<redacted>",
		"site_url": "https://crm.example/",
		"bad_url":  "<redacted>",
	}
	if diff := cmp.Diff(want, redactParams(in)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if in["token"] != "t" {
		t.Error("the job's own params were changed; a redrive needs them")
	}
}

func TestCompletedEvent(t *testing.T) {
	at := time.Date(2026, 3, 9, 12, 0, 0, 0, time.FixedZone("x", 3600))
	j := &job.Job{ID: "e/r/0", EventID: "e", Rule: "r", Action: "http.request", Key: "k",
		Params: map[string]any{"url": "https://x", "headers": map[string]any{"Cookie": "c"}}}
	ev := completedEvent(j, nil, at)
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	if ev.ID != "action.completed:e/r/0" || ev.Source != "bot" || ev.Type != "action.completed" || !ev.Time.Equal(at) || ev.Time.Location() != time.UTC {
		t.Errorf("got %+v", ev)
	}
	params := ev.Data["params"].(map[string]any)
	if params["headers"].(map[string]any)["Cookie"] != "<redacted>" {
		t.Errorf("params not redacted: %v", params)
	}
	if res, ok := ev.Data["result"].(map[string]any); !ok || res == nil {
		t.Errorf("result: got %#v, want an empty object", ev.Data["result"])
	}
}

func TestOutageStreak(t *testing.T) {
	var o outage
	if s := o.streak("a"); s != (Streak{}) {
		t.Fatalf("zero value: got %+v", s)
	}
	o.fail("a")
	o.fail("a")
	if s := o.streak("a"); s != (Streak{Failures: 2}) {
		t.Errorf("one job failing: got %+v, want no others", s)
	}
	if s := o.streak("b"); s != (Streak{Failures: 2, Others: true}) {
		t.Errorf("as seen by another job: got %+v", s)
	}
	o.fail("b")
	if s := o.streak("a"); !s.Others || s.Failures != 3 {
		t.Errorf("two jobs failing: got %+v", s)
	}
	o.ok()
	if s := o.streak("a"); s != (Streak{}) {
		t.Errorf("after an answer: got %+v", s)
	}
}

// TestIsSensitiveIsTheExpression: the ASCII shortcut answers as the
// expression does.
func TestIsSensitiveIsTheExpression(t *testing.T) {
	keys := []string{"", "url", "Authorization", "X-API-KEY", "api_key", "Api-Key", "apikey", "api key", "ApiKeys",
		"refresh_token", "TOKEN", "tok", "client_secret", "Password", "passwd", "Set-Cookie", "X-Hub-Signature-256",
		"Chat ID", "subject", "ſecret", "\u212Aey", "apı_key", strings.Repeat("a", 63) + "secret", strings.Repeat("b", 70) + "Token"}
	for _, k := range keys {
		if got, want := isSensitive(k), sensitive.MatchString(k); got != want {
			t.Errorf("isSensitive(%q) = %v, the expression says %v", k, got, want)
		}
	}
}

func FuzzIsSensitive(f *testing.F) {
	f.Add("X-Api-Key")
	f.Add("ſecret")
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := isSensitive(k), sensitive.MatchString(k); got != want {
			t.Fatalf("isSensitive(%q) = %v, the expression says %v", k, got, want)
		}
	})
}

func TestDeadLetterRedacted(t *testing.T) {
	d := &DeadLetter{Seq: 7, DeadJob: DeadJob{Job: job.Job{ID: "e/r/0", Action: "http.request",
		Params: map[string]any{"url": "https://crm.example/hook?token=s3cret", "headers": map[string]any{"Authorization": "Bearer s3cret"}}}}}
	shown := d.Redacted()
	if got := fmt.Sprint(shown.Job.Params); strings.Contains(got, "s3cret") || shown.Seq != 7 || shown.Job.ID != "e/r/0" {
		t.Errorf("shown: %+v", shown)
	}
	if d.Job.Params["url"] != "https://crm.example/hook?token=s3cret" {
		t.Error("the stored job's params were changed; a redrive needs them")
	}
}

func TestDeadLetterRedactsWhatWasStored(t *testing.T) {
	d := &DeadLetter{DeadJob: DeadJob{Reason: ReasonUndecodable,
		Stored: `{"params":{"url":"https://h.example/p?key=s3cret","headers":{"Authorization":"Bearer s3cret"}},"id":7}`}}
	d.Stored = strings.Replace(d.Stored, `"id":7`, `"id":12345678901234567`, 1)
	if got := d.Redacted().Stored; strings.Contains(got, "s3cret") || !strings.Contains(got, `"id":12345678901234567`) || !strings.Contains(got, "<redacted>") {
		t.Errorf("stored JSON: %s", got)
	}
	for _, text := range []string{"Authorization: Bearer s3cret, not JSON", `{"id":7} Authorization: Bearer s3cret`} {
		d.Stored = text
		if got := d.Redacted().Stored; strings.Contains(got, "s3cret") || !strings.Contains(got, "not JSON") {
			t.Errorf("stored %q shown as %s", text, got)
		}
	}
}
