package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/testenv"
)

// TestRecentIDsWindow: an id is remembered for at least the window and
// forgotten by the window and an eighth; an id stored before the window began
// (read from the stream late) is not remembered at all.
func TestRecentIDsWindow(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := NewRecentIDs(time.Minute)
	r.now = func() time.Time { return clock }
	at := func(d time.Duration) { clock = clock.Add(d) }

	at(30 * time.Second)
	r.Add("a", clock)
	r.Add("old", clock.Add(-61*time.Second))     // out of the window already
	r.Add("earlier", clock.Add(-50*time.Second)) // read late, still within it
	if r.Seen("b") || r.Seen("old") || !r.Seen("a") || !r.Seen("earlier") {
		t.Fatalf("seen a %v, b %v, old %v, earlier %v; want only a and earlier", r.Seen("a"), r.Seen("b"), r.Seen("old"), r.Seen("earlier"))
	}
	at(9 * time.Second) // earlier is 59s old
	if !r.Seen("earlier") {
		t.Error("earlier forgotten within the window")
	}
	at(50 * time.Second) // a is 59s old
	if !r.Seen("a") {
		t.Error("a forgotten within the window")
	}
	r.Add("b", clock)
	at(8*time.Second + 501*time.Millisecond) // a is 67.501s old: past the window and its eighth
	if got := r.Len(); got != 1 {
		t.Errorf("Len %d, want 1", got)
	}
	if r.Seen("a") || r.Seen("earlier") {
		t.Error("a or earlier remembered after the window and an eighth")
	}
	if !r.Seen("b") {
		t.Error("b forgotten within the window")
	}
	at(10 * time.Minute) // a long quiet spell
	if r.Seen("b") || r.Len() != 0 {
		t.Errorf("b remembered after a long quiet spell (%d ids)", r.Len())
	}
}

// TestRecentIDsKeepTheWindowAndLittleMore adds ids at random times around a
// moving clock, some of them late, and checks every one against its age:
// remembered while younger than the window, forgotten once older than the
// window and an eighth, and no more ids held than that span takes.
func TestRecentIDsKeepTheWindowAndLittleMore(t *testing.T) {
	const window = 8 * time.Second
	rng := rand.New(rand.NewPCG(7, 11))
	clock := time.Date(2026, 1, 2, 3, 4, 5, 123, time.UTC)
	r := NewRecentIDs(window)
	r.now = func() time.Time { return clock }
	added := map[string]time.Time{}
	for i := range 20000 {
		clock = clock.Add(time.Duration(rng.IntN(int(5 * time.Millisecond))))
		// Most ids are stored now; some are read late, up to past the window.
		stored := clock
		if rng.IntN(4) == 0 {
			stored = clock.Add(-time.Duration(rng.Int64N(int64(window + time.Second))))
		}
		id := fmt.Sprint("id-", i)
		r.Add(id, stored)
		if clock.Sub(stored) < window {
			added[id] = stored
		}
		if i%97 != 0 {
			continue
		}
		held := 0
		for id, stored := range added {
			switch age := clock.Sub(stored); {
			case age < window && !r.Seen(id):
				t.Fatalf("%s forgotten at %s old", id, age)
			case age > window+window/8 && r.Seen(id):
				t.Fatalf("%s remembered at %s old", id, age)
			case age > window+window/8:
				delete(added, id)
			default:
				held++
			}
		}
		if got := r.Len(); got > held {
			t.Fatalf("Len %d; only %d ids were stored within the window and its eighth", got, held)
		}
		if n := len(r.gens); n > generations+2 {
			t.Fatalf("%d generations for a window of %d", n, generations)
		}
	}
}

// TestRecentIDsFromAClockAhead: an id stored by a server whose clock is
// ahead counts as stored now: remembered for the window, then forgotten,
// not kept for as long as that clock is ahead.
func TestRecentIDsFromAClockAhead(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := NewRecentIDs(time.Minute)
	r.now = func() time.Time { return clock }
	r.Add("ahead", clock.Add(time.Hour))
	clock = clock.Add(59 * time.Second)
	if !r.Seen("ahead") {
		t.Error("an id from a clock ahead forgotten within the window")
	}
	clock = clock.Add(9 * time.Second)
	if r.Seen("ahead") || r.Len() != 0 || len(r.gens) != 0 {
		t.Errorf("an id from a clock ahead kept past the window and its eighth (%d ids, %d generations)", r.Len(), len(r.gens))
	}
}

// eventsStream creates an EVENTS stream that remembers message ids for
// window itself.
func eventsStream(t *testing.T, js jetstream.JetStream, window time.Duration) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: window})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// follow starts r following EVENTS; stop ends it and says whether it ended
// within 5 s.
// remakeEvents makes EVENTS again after it was deleted: the server may
// still be removing the old one's store for a moment.
func remakeEvents(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	waitUntil(t, "EVENTS to be made again", func() bool {
		_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
		return err == nil
	})
}

func follow(t *testing.T, r *RecentIDs, js jetstream.JetStream) (stop func() bool) {
	t.Helper()
	run, err := r.Follow(t.Context(), js, "EVENTS", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = run(ctx) }()
	stop = func() bool {
		cancel()
		select {
		case <-done:
			return true
		case <-time.After(5 * time.Second):
			return false
		}
	}
	t.Cleanup(func() {
		if !stop() {
			t.Error("the reader did not stop")
		}
	})
	return stop
}

func storedMsgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRecentIDsAcrossReplicas: a repeat that reaches another replica after
// the stream's own short window is still a duplicate there, and is not
// stored again: that replica read the first one's id from the stream.
func TestRecentIDsAcrossReplicas(t *testing.T) {
	js := startJetStream(t)
	const streamWindow = 500 * time.Millisecond
	s := eventsStream(t, js, streamWindow)
	jsB := connectJS(t, js.Conn().ConnectedUrl())

	a := &JetStreamPublisher{JS: js, Recent: NewRecentIDs(time.Minute)}
	recentB := NewRecentIDs(time.Minute)
	follow(t, recentB, jsB)
	b := &JetStreamPublisher{JS: jsB, Recent: recentB}

	if dup, err := a.Publish(t.Context(), testEvent("chat.ended:1")); err != nil || dup {
		t.Fatalf("first publish: duplicate %v, %v", dup, err)
	}
	waitUntil(t, "replica B to read the id", func() bool { return recentB.Seen("comm100/chat.ended:1") })
	time.Sleep(2 * streamWindow)
	for name, p := range map[string]*JetStreamPublisher{"A": a, "B": b} {
		dup, err := p.Publish(t.Context(), testEvent("chat.ended:1"))
		if err != nil || !dup {
			t.Errorf("repeat on replica %s: duplicate %v, %v; want a duplicate", name, dup, err)
		}
	}
	if dup, err := b.Publish(t.Context(), testEvent("chat.ended:2")); err != nil || dup {
		t.Errorf("a new event on B: duplicate %v, %v", dup, err)
	}
	if n := storedMsgs(t, s); n != 2 {
		t.Errorf("%d events stored, want 2", n)
	}
}

// TestRecentIDsReadsTheWindowBeforeItStarted: a bot that starts (or
// restarts) knows the ids stored within the window before it, once Follow
// has returned.
func TestRecentIDsReadsTheWindowBeforeItStarted(t *testing.T) {
	js := startJetStream(t)
	const streamWindow = 100 * time.Millisecond
	s := eventsStream(t, js, streamWindow)
	p := &JetStreamPublisher{JS: js}
	const n = 300
	for i := range n {
		if _, err := p.Publish(t.Context(), testEvent(fmt.Sprintf("chat.ended:%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRecentIDs(time.Minute)
	follow(t, r, js)
	for i := range n {
		if id := fmt.Sprintf("comm100/chat.ended:%d", i); !r.Seen(id) {
			t.Fatalf("%s not known when Follow returned", id)
		}
	}
	time.Sleep(2 * streamWindow) // past the stream's own window
	dup, err := (&JetStreamPublisher{JS: js, Recent: r}).Publish(t.Context(), testEvent("chat.ended:7"))
	if err != nil || !dup {
		t.Errorf("repeat: duplicate %v, %v", dup, err)
	}
	if got := storedMsgs(t, s); got != n {
		t.Errorf("%d events stored, want %d", got, n)
	}

	// Nothing stored within the window: Follow reads nothing and returns
	// at once.
	r = NewRecentIDs(time.Millisecond)
	r.quiet = 10 * time.Second
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	follow(t, r, js)
	if took := time.Since(start); took > r.quiet/2 || r.Len() != 0 {
		t.Errorf("Follow of an empty window took %s and remembers %d ids", took, r.Len())
	}
}

// TestRecentIDsFollowAfterAnOutage: when the server goes away and comes
// back, the reader starts again where it stopped and reads the ids stored
// since.
func TestRecentIDsFollowAfterAnOutage(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	start := func() *server.Server {
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
		return ns
	}
	ns := start()
	opts.Port = ns.Addr().(*net.TCPAddr).Port
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	js := connectJS(t, ns.ClientURL())
	eventsStream(t, js, 0)
	p := &JetStreamPublisher{JS: js}
	if _, err := p.Publish(t.Context(), testEvent("chat.ended:1")); err != nil {
		t.Fatal(err)
	}
	r := NewRecentIDs(time.Minute)
	follow(t, r, connectJS(t, ns.ClientURL()))

	ns.Shutdown()
	ns.WaitForShutdown()
	ns = start()
	waitUntil(t, "the publisher to reconnect", js.Conn().IsConnected)
	p.Timeout = time.Second // the first requests after a restart may go unanswered
	waitUntil(t, "the id after the outage to be stored", func() bool {
		_, err := p.Publish(t.Context(), testEvent("chat.ended:2"))
		return err == nil
	})
	waitUntil(t, "the id stored after the outage to be read", func() bool { return r.Seen("comm100/chat.ended:2") })
	if !r.Seen("comm100/chat.ended:1") {
		t.Error("the id read before the outage is forgotten")
	}
}

// connectJS connects as another replica would, reconnecting quickly.
func connectJS(t *testing.T, url string) jetstream.JetStream {
	return testenv.Connect(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
}

// TestRecentIDsFollowAStreamMadeAnew: a stream deleted and made again starts
// its sequence again; the reader notices and reads the new one. While the
// stream is gone, the reader still stops when told.
func TestRecentIDsFollowAStreamMadeAnew(t *testing.T) {
	js := startJetStream(t)
	eventsStream(t, js, 0)
	p := &JetStreamPublisher{JS: js}
	for i := range 5 {
		if _, err := p.Publish(t.Context(), testEvent(fmt.Sprintf("chat.ended:%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRecentIDs(time.Minute)
	r.quiet = 200 * time.Millisecond
	follow(t, r, connectJS(t, js.Conn().ConnectedUrl()))
	if !r.Seen("comm100/chat.ended:4") {
		t.Fatal("chat.ended:4 not read")
	}
	if err := js.DeleteStream(t.Context(), "EVENTS"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the reader finds the stream gone
	remakeEvents(t, js)
	if _, err := p.Publish(t.Context(), testEvent("chat.ended:new")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the id stored in the new stream to be read", func() bool { return r.Seen("comm100/chat.ended:new") })

	// Gone again, for good: the reader stops when told, at once.
	r2 := NewRecentIDs(time.Minute)
	r2.quiet = 200 * time.Millisecond
	stop := follow(t, r2, connectJS(t, js.Conn().ConnectedUrl()))
	if err := js.DeleteStream(t.Context(), "EVENTS"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	start := time.Now()
	if !stop() {
		t.Fatal("the reader did not stop while the stream was gone")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the reader took %s to stop while the stream was gone", took)
	}
}

// TestRecentIDsFollowAStreamMadeAnewAndFilled: a stream made again that
// already holds more events than the reader had read is told apart by its
// creation time, and read from its start.
func TestRecentIDsFollowAStreamMadeAnewAndFilled(t *testing.T) {
	js := startJetStream(t)
	eventsStream(t, js, 0)
	p := &JetStreamPublisher{JS: js}
	publish := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			if _, err := p.Publish(t.Context(), testEvent(fmt.Sprintf("%s:%d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("chat.ended", 3)
	r := NewRecentIDs(time.Minute)
	r.quiet = 200 * time.Millisecond
	follow(t, r, connectJS(t, js.Conn().ConnectedUrl()))
	if err := js.DeleteStream(t.Context(), "EVENTS"); err != nil {
		t.Fatal(err)
	}
	remakeEvents(t, js)
	publish("chat.started", 10)
	waitUntil(t, "the first id of the new stream to be read", func() bool { return r.Seen("comm100/chat.started:0") })
}

// An event that a version of the bot before keys stored under its bare id
// is remembered under its key, so that its repeat is recognised; another
// source's event with the same id is not taken for it.
func TestRecentIDsKnowEventsStoredUnderTheBareID(t *testing.T) {
	js := startJetStream(t)
	eventsStream(t, js, 100*time.Millisecond)
	old := testEvent("chat.ended:77")
	data, err := event.Encode(old)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: old.BusSubject(), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, old.ID) // as the older version stored it
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	r := NewRecentIDs(time.Minute)
	follow(t, r, js)
	time.Sleep(200 * time.Millisecond) // past the stream's own window: only r knows
	p := &JetStreamPublisher{JS: js, Recent: r}
	if dup, err := p.Publish(t.Context(), testEvent("chat.ended:77")); err != nil || !dup {
		t.Errorf("the repeat: duplicate %v, %v; want a duplicate", dup, err)
	}
	other := testEvent("chat.ended:77")
	other.Source = "crm"
	if dup, err := p.Publish(t.Context(), other); err != nil || dup {
		t.Errorf("another source's event with the id: duplicate %v, %v; want it stored", dup, err)
	}
}

func TestStoredKey(t *testing.T) {
	for _, tt := range []struct {
		subject, id string
		keyed       bool
		want        string
	}{
		{"events.shop.order.created", "shop/1001", true, "shop/1001"},
		{"events.shop.order.created", "1001", false, "shop/1001"},
		// An old event whose id holds "/" is not taken for a key.
		{"events.orders.order.created", "orders/1001", false, "orders/orders/1001"},
		{"events.shop.order.created", "1001/redrive/7", false, "shop/1001/redrive/7"},
		{"dlq.x", "1001", false, "1001"},
	} {
		if got := storedKey(tt.subject, tt.id, tt.keyed); got != tt.want {
			t.Errorf("storedKey(%q, %q, %v) = %q, want %q", tt.subject, tt.id, tt.keyed, got, tt.want)
		}
	}
}
