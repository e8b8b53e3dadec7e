package rules

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/job"
	"github.com/comm100bot/bot/internal/testenv"
)

// routerEnv is a router on a real embedded JetStream, with the streams set up.
type routerEnv struct {
	js      jetstream.JetStream
	engine  atomic.Pointer[Engine]
	router  *Router
	reg     *prometheus.Registry
	log     *testenv.LogBuffer
	parking *Parking
}

func startRouter(t *testing.T, rules string) *routerEnv {
	t.Helper()
	js := testenv.Connect(t, testenv.JetStream(t).ClientURL())
	if err := bus.Setup(t.Context(), js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	env := &routerEnv{js: js, reg: prometheus.NewRegistry(), log: &testenv.LogBuffer{}, parking: &Parking{JS: js}}
	env.setRules(t, rules)
	log := slog.New(slog.NewTextHandler(env.log, nil))
	var err error
	env.router, err = NewRouter(js, env.engine.Load, &actions.Queue{JS: js}, log, env.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.router.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return env
}

func (env *routerEnv) setRules(t *testing.T, src string) {
	t.Helper()
	eng, err := Load([]SourceFile{{Path: "rules.yaml", Data: []byte(src)}}, actions.NewCatalog(), testShapes())
	if err != nil {
		t.Fatal(err)
	}
	env.engine.Store(eng)
}

// publish stores raw bytes on EVENTS as ingest (or an older version of it) would have.
func (env *routerEnv) publish(t *testing.T, subject, id string, data []byte) {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := env.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
}

func (env *routerEnv) publishEvent(t *testing.T, ev *event.Event) {
	t.Helper()
	data, err := event.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	env.publish(t, ev.BusSubject(), ev.ID, data)
}

// waitIdle waits until the rules consumer has handled everything published.
func (env *routerEnv) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Every event stored so far acknowledged: the ack floor at the
		// stream's last sequence (the pending counts alone can read zero
		// for a moment before a new event is counted).
		s, serr := env.js.Stream(t.Context(), bus.EventsStream)
		c, err := env.js.Consumer(t.Context(), bus.EventsStream, bus.RulesConsumer)
		if serr == nil && err == nil {
			info := c.CachedInfo()
			if info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= s.CachedInfo().State.LastSeq {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the rules consumer to be idle")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jobIDs are the ids of the jobs on ACTIONS, one entry per stored message.
func (env *routerEnv) jobIDs(t *testing.T) []string {
	t.Helper()
	s, err := env.js.Stream(t.Context(), bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := uint64(1); ; {
		raw, err := s.GetMsg(t.Context(), seq, jetstream.WithGetMsgSubject(bus.ActionsSubjects))
		if err != nil {
			return out
		}
		var j job.Job
		if err := json.Unmarshal(raw.Data, &j); err != nil {
			t.Fatal(err)
		}
		out = append(out, j.ID)
		seq = raw.Sequence + 1
	}
}

const parkRules = `rules:
  - name: ticket-every-chat
    on: comm100.chat.ended
    actions:
      - do: log
        with: { message: "chat {{ data.chat.id }}" }
  - name: low-rating
    on: comm100.chat.ended
    when: data.chat.rating > 0 && data.chat.rating <= 2
    actions:
      - do: log
        with: { message: "low rating" }
  - name: ratio
    on: shop.order.paid
    actions:
      - do: http.request
        with: { url: "http://127.0.0.1:1/", body: { ratio: "{{ data.n / 0 }}" } }
`

func chatEvent(id string, rating any) *event.Event {
	return &event.Event{ID: "chat.ended:" + id, Source: "comm100", Type: "chat.ended", Time: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC),
		Data: map[string]any{"chat": map[string]any{"id": id, "rating": rating}}}
}

// TestRouterParksWhatItCannotDecodeOrEvaluate: nothing the consumer takes
// is forgotten. An event that cannot be decoded, or that a rule cannot
// evaluate, is parked on the DLQ with its event id, the rule and the error,
// counted, and logged with its event id; the rules that could run on it ran.
func TestRouterParksWhatItCannotDecodeOrEvaluate(t *testing.T) {
	env := startRouter(t, parkRules)
	deep := `{"id":"chat.ended:9","source":"comm100","type":"chat.ended","time":"2026-03-02T10:00:00Z","data":{"x":` +
		strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`
	env.publish(t, "events.comm100.chat.ended", "chat.ended:9", []byte(deep))
	env.publish(t, "events.comm100.chat.ended", "comm100/chat.ended:8", []byte("not JSON")) // stored under its key
	env.publishEvent(t, chatEvent("1", "one"))
	env.publishEvent(t, chatEvent("2", map[string]any{}))
	env.publishEvent(t, chatEvent("3", int64(1)))
	env.publishEvent(t, &event.Event{ID: "o-1", Source: "shop", Type: "order.paid", Time: time.Now(), Data: map[string]any{"n": int64(3)}})
	env.waitIdle(t)

	parked, err := env.parking.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ EventID, Rule, Reason, Error string }
	var got []entry
	for _, p := range parked {
		got = append(got, entry{p.EventID, p.Rule, p.Reason, p.Error})
		if p.Kind != ParkedKind || p.Subject == "" || p.Parked.IsZero() || p.stored() == nil {
			t.Errorf("parked %s lacks its kind, subject, time or event: %+v", p.EventID, p)
		}
	}
	want := []struct{ id, rule, reason, err string }{
		{"chat.ended:9", "", ParkUndecodable, "nested too deep"},
		{"chat.ended:8", "", ParkUndecodable, "invalid character"},
		{"chat.ended:1", "low-rating", ParkEvaluate, "string"},
		{"chat.ended:2", "low-rating", ParkEvaluate, "map"},
		{"o-1", "ratio", ParkUnencodable, "cannot be encoded"},
	}
	if len(got) != len(want) {
		t.Fatalf("parked %+v, want %d entries", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.EventID != w.id || g.Rule != w.rule || g.Reason != w.reason || !strings.Contains(g.Error, w.err) {
			t.Errorf("parked #%d: got %+v, want event %s rule %q reason %s error with %q", i, g, w.id, w.rule, w.reason, w.err)
		}
	}
	// The rule that could run did run, on every decodable chat.
	jobs := strings.Join(env.jobIDs(t), " ")
	for _, id := range []string{"chat.ended:1/ticket-every-chat/0", "chat.ended:2/ticket-every-chat/0", "chat.ended:3/low-rating/0"} {
		if !strings.Contains(jobs, id) {
			t.Errorf("jobs %s lack %s", jobs, id)
		}
	}
	for reason, n := range map[string]float64{ParkUndecodable: 2, ParkEvaluate: 2, ParkUnencodable: 1} {
		var m dto.Metric
		_ = env.router.parked.WithLabelValues(reason).Write(&m)
		if got := m.GetCounter().GetValue(); got != n {
			t.Errorf("bot_rules_parked_total{reason=%q}: got %v, want %v", reason, got, n)
		}
	}
	if n, err := env.parking.Size(t.Context()); err != nil || n != 5 {
		t.Errorf("parked size: got %d %v, want 5", n, err)
	}
	if dead, err := (&actions.DLQ{JS: env.js}).List(t.Context()); err != nil || len(dead) != 0 {
		t.Errorf("dead jobs: got %v %v, want none: parked events are not jobs", dead, err)
	}
	logs := env.log.String()
	for _, id := range []string{"chat.ended:9", "chat.ended:8", "chat.ended:1", "o-1"} {
		if !strings.Contains(logs, "event_id="+id+" ") {
			t.Errorf("no log line names event_id=%s:\n%s", id, logs)
		}
	}
}

// TestRedriveRunsTheRulesAgain: once the rule is fixed, a redrive
// republishes the event and the rules run on it again. The jobs of the
// rules that ran the first time keep their ids and are stored once; an
// event that still fails is parked again.
func TestRedriveRunsTheRulesAgain(t *testing.T) {
	env := startRouter(t, parkRules)
	env.publishEvent(t, chatEvent("1", "one"))
	env.publishEvent(t, chatEvent("2", "two"))
	env.waitIdle(t)
	parked, err := env.parking.List(t.Context())
	if err != nil || len(parked) != 2 {
		t.Fatalf("parked: got %v %v, want 2", parked, err)
	}

	env.setRules(t, fixedParkRules)
	for _, p := range parked {
		if _, err := env.parking.Redrive(t.Context(), p.Seq); err != nil {
			t.Fatal(err)
		}
	}
	env.waitIdle(t)

	count := env.jobCounts(t)
	want := map[string]int{
		"chat.ended:1/ticket-every-chat/0": 1, // ran the first time; the redrive's copy was a duplicate
		"chat.ended:2/ticket-every-chat/0": 1,
		"chat.ended:1/low-rating/0":        1, // the fixed rule
	}
	for id, n := range want {
		if count[id] != n {
			t.Errorf("job %s stored %d times, want %d (all: %v)", id, count[id], n, count)
		}
	}
	again, err := env.parking.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].EventID != "chat.ended:2" || again[0].Seq == parked[1].Seq {
		t.Fatalf("after the redrive: got %+v, want chat.ended:2 parked again as a new entry", again)
	}
	if _, err := env.parking.Get(t.Context(), parked[0].Seq); err == nil {
		t.Error("a redriven entry is still in the DLQ")
	}
}

// TestJobIDsFollowTheStoredID: an event stored under its key (as ingest
// stores it) has jobs named after the key, also when redriven from the DLQ;
// one stored under its bare id (by a version of the bot before keys) keeps
// the job ids it always had, so that its copies do not run again.
func TestJobIDsFollowTheStoredID(t *testing.T) {
	env := startRouter(t, parkRules)
	keyed := chatEvent("1", "one")
	data, err := event.Encode(keyed)
	if err != nil {
		t.Fatal(err)
	}
	env.publish(t, keyed.BusSubject(), keyed.Key(), data)
	env.publishEvent(t, chatEvent("2", 2)) // bare id
	env.waitIdle(t)
	parked, err := env.parking.List(t.Context())
	if err != nil || len(parked) != 1 || parked[0].StoredID != "comm100/chat.ended:1" {
		t.Fatalf("parked: got %+v %v, want the keyed event with its stored id", parked, err)
	}
	env.setRules(t, fixedParkRules)
	if _, err := env.parking.Redrive(t.Context(), parked[0].Seq); err != nil {
		t.Fatal(err)
	}
	env.waitIdle(t)
	count := env.jobCounts(t)
	want := map[string]int{
		"comm100/chat.ended:1/ticket-every-chat/0": 1, // the redrive's copy was refused
		"comm100/chat.ended:1/low-rating/0":        1,
		"chat.ended:2/ticket-every-chat/0":         1,
		"chat.ended:2/low-rating/0":                1,
	}
	if len(count) != len(want) {
		t.Errorf("jobs: %v, want %v", count, want)
	}
	for id, n := range want {
		if count[id] != n {
			t.Errorf("job %s stored %d times, want %d (all: %v)", id, count[id], n, count)
		}
	}
}

// fixedParkRules are parkRules with the low-rating rule taking "one".
var fixedParkRules = strings.Replace(parkRules, "when: data.chat.rating > 0 && data.chat.rating <= 2",
	`when: 'string(data.chat.rating) == "one" || data.chat.rating > 0 && data.chat.rating <= 2'`, 1)

// jobCounts counts the jobs stored on ACTIONS by id.
func (env *routerEnv) jobCounts(t *testing.T) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, id := range env.jobIDs(t) {
		count[id]++
	}
	return count
}

// TestReplayAtEventTime: replayed with AtEventTime, an event is evaluated
// at the time it was first stored; without, at the time of the replay.
func TestReplayAtEventTime(t *testing.T) {
	env := startRouter(t, "rules: []\n")
	ev := chatEvent("5", 5)
	data, err := event.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	env.publish(t, ev.BusSubject(), ev.Key(), data)
	env.waitIdle(t)
	stored := time.Now()
	time.Sleep(50 * time.Millisecond) // the replay is later, to tell the times apart

	env.setRules(t, `rules:
  - name: stamp
    on: comm100.chat.ended
    actions: [{do: log, with: {message: '{{ now().Format("2006-01-02T15:04:05.999999999Z07:00") }}'}}]
`)
	if _, err := Replay(t.Context(), env.js, stored.Add(-time.Minute), ReplayOptions{AtEventTime: true}); err != nil {
		t.Fatal(err)
	}
	env.waitIdle(t)
	s, err := env.js.Stream(t.Context(), bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(t.Context(), bus.ActionsSubjects)
	if err != nil {
		t.Fatal(err)
	}
	var j job.Job
	if err := json.Unmarshal(raw.Data, &j); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, j.Params["message"].(string))
	if err != nil || at.After(stored) {
		t.Errorf("evaluated at %v (%v), want the time it was first stored, before %v", at, err, stored)
	}
	if j.Created.Before(stored) {
		t.Errorf("created %v, want the time it was made (its retries count from then)", j.Created)
	}
}
