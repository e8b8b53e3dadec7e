package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/job"
	"github.com/comm100bot/bot/internal/testenv"
)

func writeRules(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func postJSON(t *testing.T, url string, body any) {
	t.Helper()
	data, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: got %d, want 202", resp.StatusCode)
	}
}

func ticketSubjects(sim *comm100test.Server) map[string]time.Time {
	out := map[string]time.Time{}
	for _, c := range ticketCalls(sim) {
		var b struct{ Subject string }
		_ = json.Unmarshal(c.Body, &b)
		out[b.Subject] = c.Time
	}
	return out
}

// followUpRules schedule a follow-up ticket after delay when a chat ends,
// and cancel it when the chat is wrapped up.
func followUpRules(t *testing.T, delay string) string {
	return writeRules(t, `rules:
  - name: follow-up
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        after: `+delay+`
        key: "chat-{{ data.chat_id }}"
        with: { subject: "Follow up {{ data.chat_id }}" }
  - name: cancel-follow-up
    on: comm100.chat.wrapped_up
    actions:
      - do: schedule.cancel
        with: { key: "chat-{{ data.chat_id }}" }
`)
}

// scheduledJob is a delayed job as it waits in ACTIONS, with the time the
// server is told to fire it.
type scheduledJob struct {
	Job job.Job
	At  string
}

// scheduledJobs reads the delayed jobs waiting in ACTIONS.
func scheduledJobs(t *testing.T, a *app) []scheduledJob {
	t.Helper()
	cons, err := a.bus.JS.OrderedConsumer(t.Context(), bus.ActionsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{actions.ScheduleSubjectPrefix + ">"},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []scheduledJob
	if info.NumPending == 0 {
		return out
	}
	batch, err := cons.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		var s scheduledJob
		if err := json.Unmarshal(msg.Data(), &s.Job); err != nil {
			t.Fatal(err)
		}
		s.At = msg.Headers().Get(jetstream.ScheduleHeader)
		out = append(out, s)
	}
	if err := batch.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDelayedJobSurvivesRestartAndCancelledOneNeverFires: two chats end,
// each schedules a follow-up ticket an hour later; the second chat is
// wrapped up, which cancels its follow-up. After a restart the first
// follow-up still waits in the stream, due at its time, and the second is
// gone, so nothing can fire it. That the server fires a waiting job when it
// is due is TestDelayedJobFiresWhenDue's part; the whole story in real time
// is TestDelayedJobSurvivesRestartLong.
func TestDelayedJobSurvivesRestartAndCancelledOneNeverFires(t *testing.T) {
	t.Parallel()
	sim, simArgs := startSim(t, comm100test.Config{})
	store := t.TempDir()
	args := append(simArgs, "--rules.dir", followUpRules(t, "1h"))
	a, stop := runBot(t, store, args...)
	url := "http://" + a.Addr() + "/hooks/comm100"
	posted := time.Now()
	postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": 1}})
	postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": 2}})
	waitFor(t, "both follow-ups to be scheduled", 10*time.Second, func() bool {
		return metricValue(t, a, "bot_scheduled_jobs") == "2"
	})
	postJSON(t, url, map[string]any{"event": "chat_wrapped_up", "chat_id": 2, "wrapup": map[string]any{}})
	waitFor(t, "the second follow-up to be cancelled", 10*time.Second, func() bool {
		return metricValue(t, a, "bot_scheduled_jobs") == "1"
	})
	stop()

	a, _ = runBot(t, store, args...)
	waitIdle(t, a)
	waiting := scheduledJobs(t, a)
	if len(waiting) != 1 {
		t.Fatalf("after the restart %d follow-ups wait, want 1: %+v", len(waiting), waiting)
	}
	j := waiting[0]
	if j.Job.Rule != "follow-up" || j.Job.Params["subject"] != "Follow up 1" {
		t.Errorf("the follow-up waiting is %s %v, want chat 1's", j.Job.Rule, j.Job.Params)
	}
	if due := posted.Add(time.Hour); j.Job.RunAt.Before(due) || j.At != "@at "+j.Job.RunAt.Format(time.RFC3339Nano) {
		t.Errorf("the follow-up is due %s (schedule %q), want its RunAt, an hour after the chat ended (%s)", j.Job.RunAt, j.At, due)
	}
	if got := metricValue(t, a, "bot_scheduled_jobs"); got != "1" {
		t.Errorf("bot_scheduled_jobs after the restart: got %s, want 1", got)
	}
	if n := len(ticketCalls(sim)); n != 0 {
		t.Errorf("%d tickets created an hour before the follow-ups are due", n)
	}
}

// TestDelayedJobFiresWhenDue: a follow-up scheduled a second ahead is
// carried out, once, and not before its time.
func TestDelayedJobFiresWhenDue(t *testing.T) {
	t.Parallel()
	const delay = time.Second
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, append(simArgs, "--rules.dir", followUpRules(t, delay.String()))...)
	posted := time.Now()
	postJSON(t, "http://"+a.Addr()+"/hooks/comm100", map[string]any{"event": "chat_ended", "chat": map[string]any{"id": 1}})
	waitFor(t, "the follow-up", 20*time.Second, func() bool {
		_, ok := ticketSubjects(sim)["Follow up 1"]
		return ok
	})
	waitIdle(t, a)
	// The job is due a second after the rules saw the event, which is after
	// it was posted: the call cannot come earlier.
	if early := posted.Add(delay).Sub(ticketSubjects(sim)["Follow up 1"]); early > 0 {
		t.Errorf("follow-up fired %s early", early)
	}
	if n := len(ticketCalls(sim)); n != 1 {
		t.Errorf("got %d ticket calls, want 1", n)
	}
	if got := metricValue(t, a, "bot_scheduled_jobs"); got != "0" {
		t.Errorf("bot_scheduled_jobs after the follow-up fired: got %s, want 0", got)
	}
}

// TestDelayedJobSurvivesRestartLong tells the whole story in real time: two
// chats end, each schedules a follow-up; the first chat's follow-up is
// cancelled; the bot restarts before they are due; the second chat's
// follow-up fires after the restart, and the cancelled one never does.
func TestDelayedJobSurvivesRestartLong(t *testing.T) {
	testenv.Long(t)
	t.Parallel()
	// Far longer than the steps before the restart take, so that the
	// restart comes first however loaded the machine.
	const delay = 10 * time.Second
	sim, simArgs := startSim(t, comm100test.Config{})
	store := t.TempDir()
	args := append(simArgs, "--rules.dir", followUpRules(t, delay.String()))
	a, stop := runBot(t, store, args...)
	url := "http://" + a.Addr() + "/hooks/comm100"
	posted := time.Now()
	// Chat 1 ends first, so its follow-up would be due first: once chat 2's
	// has fired and the workers are idle, chat 1's would have fired too.
	postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": 1}})
	postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": 2}})
	waitFor(t, "both follow-ups to be scheduled", 10*time.Second, func() bool {
		return metricValue(t, a, "bot_scheduled_jobs") == "2"
	})
	postJSON(t, url, map[string]any{"event": "chat_wrapped_up", "chat_id": 1, "wrapup": map[string]any{}})
	waitFor(t, "the first follow-up to be cancelled", 10*time.Second, func() bool {
		return metricValue(t, a, "bot_scheduled_jobs") == "1"
	})
	stop()
	if n := len(ticketCalls(sim)); n != 0 {
		t.Fatalf("%d tickets before the follow-ups were due", n)
	}

	a, _ = runBot(t, store, args...)
	waitFor(t, "the follow-up of chat 2", delay+20*time.Second, func() bool {
		_, ok := ticketSubjects(sim)["Follow up 2"]
		return ok
	})
	waitIdle(t, a)
	if early := posted.Add(delay).Sub(ticketSubjects(sim)["Follow up 2"]); early > 0 {
		t.Errorf("follow-up fired %s early", early)
	}
	if _, ok := ticketSubjects(sim)["Follow up 1"]; ok {
		t.Error("the cancelled follow-up fired")
	}
	if n := len(ticketCalls(sim)); n != 1 {
		t.Errorf("got %d ticket calls, want 1", n)
	}
}

// TestJobRedeliveredAfterSuccessRunsOnce publishes the same job twice under
// different message ids, as a crash between the call and the ack, or a
// re-publish after the duplicate window, would: Comm100 sees one call.
func TestJobRedeliveredAfterSuccessRunsOnce(t *testing.T) {
	t.Parallel()
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, simArgs...)
	j := job.Job{
		ID: "e1/r/0", EventID: "e1", Rule: "r", Action: "comm100.ticket.create",
		Params: map[string]any{"subject": "once"}, Created: time.Now(),
	}
	data, _ := json.Marshal(j)
	for i := range 2 {
		msg := &nats.Msg{Subject: j.RunSubject(), Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("copy-%d", i))
		if _, err := a.bus.JS.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
		waitIdle(t, a)
	}
	if n := len(ticketCalls(sim)); n != 1 {
		t.Fatalf("got %d ticket calls, want 1", n)
	}
	if got := metricValue(t, a, `bot_jobs_total{action="comm100.ticket.create",outcome="duplicate"}`); got != "1" {
		t.Errorf("duplicate jobs metric: got %q, want 1", got)
	}
}

// TestBacklogGauges: jobs that wait for the Comm100 budget count in
// bot_jobs_waiting, and events the rules have evaluated leave
// bot_events_waiting at 0.
func TestBacklogGauges(t *testing.T) {
	t.Parallel()
	_, simArgs := startSim(t, comm100test.Config{})
	rules := writeRules(t, `rules:
  - name: ticket
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        with: { subject: "Chat {{ data.chat_id }}" }
`)
	args := append(simArgs, "--rules.dir", rules,
		"--comm100.rate_limit.calls", "1", "--comm100.rate_limit.per", "1h")
	a := startBot(t, args...)
	url := "http://" + a.Addr() + "/hooks/comm100"
	for id := range 3 {
		postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": id + 1}})
	}
	// One call spends the budget; the other two jobs wait for it.
	waitFor(t, "two jobs waiting for the budget", 10*time.Second, func() bool {
		return metricValue(t, a, "bot_jobs_waiting") == "2" && metricValue(t, a, "bot_events_waiting") == "0"
	})
}

// TestUpgradeFromOnePoolLane: a store left by a version whose pool had one
// lane, with a ticket job still waiting in ACTIONS: the bot removes that
// version's consumer (no other replica shares an embedded server) and its
// Comm100 lane makes the ticket.
func TestUpgradeFromOnePoolLane(t *testing.T) {
	t.Parallel()
	sim, simArgs := startSim(t, comm100test.Config{})
	store := t.TempDir()
	a, stop := runBot(t, store, simArgs...)
	stop()
	// What the earlier version left: its consumer, and a job it had not run.
	func() {
		b, err := bus.Open(t.Context(), bus.Config{StoreDir: store, Listen: "127.0.0.1:-1"}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.JS.CreateOrUpdateConsumer(t.Context(), bus.ActionsStream, jetstream.ConsumerConfig{
			Durable: bus.OneLaneConsumer, FilterSubject: job.RunSubjectPrefix + ">", AckPolicy: jetstream.AckExplicitPolicy,
		}); err != nil {
			t.Fatal(err)
		}
		j := job.Job{ID: "old/r/0", EventID: "old", Rule: "r", Action: "comm100.ticket.create",
			Params: map[string]any{"subject": "left waiting"}, Created: time.Now()}
		if err := (&actions.Queue{JS: b.JS}).Publish(t.Context(), &j); err != nil {
			t.Fatal(err)
		}
	}()

	a, stop = runBot(t, store, simArgs...)
	defer stop()
	waitFor(t, "the ticket left waiting", 20*time.Second, func() bool { _, ok := ticketSubjects(sim)["left waiting"]; return ok })
	if _, err := a.bus.JS.Consumer(t.Context(), bus.ActionsStream, bus.OneLaneConsumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the one-lane consumer: got %v, want it removed", err)
	}
}
