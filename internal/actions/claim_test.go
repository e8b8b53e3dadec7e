package actions

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/job"
)

// replica is a pool set up on the bench as one replica of the bot, without
// its fetcher: the test hands it deliveries itself.
func (b *bench) replica(s *sim) (*Pool, *prometheus.Registry) {
	b.t.Helper()
	reg := prometheus.NewRegistry()
	p, err := NewPool(Config{CallTimeout: 5 * time.Second}, b.js, NewCatalog(), s.rt, s.limiter, b.log, reg)
	if err != nil {
		b.t.Fatal(err)
	}
	p.claimMargin = time.Second
	if err := p.setup(b.t.Context()); err != nil {
		b.t.Fatal(err)
	}
	if p.claims == nil {
		b.t.Fatal("the KV ledger cannot claim jobs")
	}
	return p, reg
}

// deliveries fetches n deliveries of run jobs from a consumer of the test's
// own, as a replica's fetcher would from the workers' consumer.
func (b *bench) deliveries(cons jetstream.Consumer, n int) []jetstream.Msg {
	b.t.Helper()
	var out []jetstream.Msg
	deadline := time.Now().Add(20 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		batch, err := cons.Fetch(n-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
	}
	if len(out) < n {
		b.t.Fatalf("got %d deliveries, want %d", len(out), n)
	}
	return out
}

func decodeJob(t *testing.T, m jetstream.Msg) *job.Job {
	t.Helper()
	j := new(job.Job)
	if err := json.Unmarshal(m.Data(), j); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestClaimKeepsTwoReplicasFromRunningAJobAtOnce gives two replicas a
// delivery each of the same job, as when a lost consumer leader redelivers a
// job still in a call: the second finds the first's claim and hands its copy
// back without a call; when the copy comes again, the done record answers
// it. Comm100 is called once.
func TestClaimKeepsTwoReplicasFromRunningAJobAtOnce(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	if err := s.SetFaults(comm100test.Faults{Latency: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	a, regA := b.replica(s)
	c, regC := b.replica(s)
	cons, err := b.js.CreateConsumer(t.Context(), bus.ActionsStream, jetstream.ConsumerConfig{
		Durable: "claim-test", FilterSubject: job.RunSubjectPrefix + ">",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	j := ticketJob("claimed")
	b.publish(j)
	b.publishCopy(j, "redelivered")
	msgs := b.deliveries(cons, 2)

	var wg sync.WaitGroup
	wg.Go(func() { a.deliver(t.Context(), msgs[0], decodeJob(t, msgs[0])) })
	// Wait for a's claim, so that c's delivery comes while a is in its call.
	kv, err := b.js.KeyValue(t.Context(), bus.DoneBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first replica's claim", 10*time.Second, func() bool {
		_, err := kv.Get(t.Context(), claimKey(j.ID))
		return err == nil
	})
	c.deliver(t.Context(), msgs[1], decodeJob(t, msgs[1]))
	if n := jobsMetric(t, regC, j.Action, "claimed"); n != 1 {
		t.Errorf("second replica: %d jobs handed back for a claim, want 1", n)
	}
	wg.Wait()
	if n := jobsMetric(t, regA, j.Action, "done"); n != 1 {
		t.Errorf("first replica: %d jobs done, want 1", n)
	}
	if _, err := kv.Get(t.Context(), claimKey(j.ID)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("claim after the job was recorded: got err %v, want it released", err)
	}

	// The copy handed back comes again when the claim's lease would end.
	again := b.deliveries(cons, 1)
	c.deliver(t.Context(), again[0], decodeJob(t, again[0]))
	if n := jobsMetric(t, regC, j.Action, "duplicate"); n != 1 {
		t.Errorf("second replica: %d duplicates, want 1", n)
	}
	if n := calls(s.Requests(), "POST", ticketsPath, 0); n != 1 {
		t.Errorf("Comm100 was called %d times, want 1", n)
	}
}

// TestClaimOfAVanishedOwnerIsTakenOver: a claim whose lease ended (its
// owner died between its claim and its record) does not hold the job for
// good; a live claim of another owner does.
func TestClaimOfAVanishedOwnerIsTakenOver(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	p, reg := b.replica(s)
	cons, err := b.js.CreateConsumer(t.Context(), bus.ActionsStream, jetstream.ConsumerConfig{
		Durable: "claim-test", FilterSubject: job.RunSubjectPrefix + ">",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	live, stale := ticketJob("live"), ticketJob("stale")
	if rev, _, err := p.claims.Claim(t.Context(), live.ID, "elsewhere", time.Now(), time.Hour); err != nil || rev == 0 {
		t.Fatalf("live claim: rev %d, err %v", rev, err)
	}
	if rev, _, err := p.claims.Claim(t.Context(), stale.ID, "vanished", time.Now().Add(-time.Hour), time.Minute); err != nil || rev == 0 {
		t.Fatalf("stale claim: rev %d, err %v", rev, err)
	}
	b.publish(live, stale)
	for _, m := range b.deliveries(cons, 2) {
		p.deliver(t.Context(), m, decodeJob(t, m))
	}
	if n := jobsMetric(t, reg, live.Action, "claimed"); n != 1 {
		t.Errorf("%d jobs handed back for a live claim, want 1 (the live one)", n)
	}
	if n := jobsMetric(t, reg, stale.Action, "done"); n != 1 {
		t.Errorf("%d jobs done, want 1 (the one whose claim went stale)", n)
	}
	if n := calls(s.Requests(), "POST", ticketsPath, http.StatusCreated); n != 1 {
		t.Errorf("Comm100 was called %d times, want 1", n)
	}
	// Two workers that find the same stale claim: one takes it over.
	if rev, _, err := p.claims.Claim(t.Context(), "race", "vanished", time.Now().Add(-time.Hour), time.Minute); err != nil || rev == 0 {
		t.Fatalf("stale claim: rev %d, err %v", rev, err)
	}
	var mu sync.Mutex
	won := 0
	var wg sync.WaitGroup
	for _, owner := range []string{"one", "two"} {
		wg.Go(func() {
			rev, _, err := p.claims.Claim(t.Context(), "race", owner, time.Now(), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if rev != 0 {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d owners took over the stale claim, want 1", won)
	}
}
