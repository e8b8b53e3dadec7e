package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/ingest"
	"github.com/comm100bot/bot/internal/job"
	"github.com/comm100bot/bot/internal/secret"
)

// bench is a real embedded JetStream server with the bot's streams, a
// connection to it, and the pools started on it.
type bench struct {
	t     *testing.T
	store string
	port  int

	mu  sync.Mutex
	srv *server.Server

	nc    *nats.Conn
	js    jetstream.JetStream
	queue *Queue
	dlq   *DLQ
	log   *slog.Logger
}

func newBench(t *testing.T) *bench {
	t.Helper()
	b := &bench{t: t, store: t.TempDir(), port: -1}
	b.startServer()
	b.port = b.srv.Addr().(*net.TCPAddr).Port
	b.nc, b.js = b.connect()
	t.Cleanup(b.nc.Close)
	if err := bus.Setup(t.Context(), b.js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	b.queue = &Queue{JS: b.js}
	b.dlq = &DLQ{JS: b.js}
	b.log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return b
}

// startServer starts the server on the bench's store and port (a free one
// the first time).
func (b *bench) startServer() {
	b.t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "bench", Host: "127.0.0.1", Port: b.port,
		JetStream: true, StoreDir: b.store, NoLog: true, NoSigs: true,
	})
	if err != nil {
		b.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		b.t.Fatal("embedded NATS server not ready")
	}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	b.t.Cleanup(srv.Shutdown)
}

// stopServer shuts the server down, as an operator or a crash would.
func (b *bench) stopServer() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	srv.Shutdown()
	srv.WaitForShutdown()
}

// connect opens a connection with the bot's reconnect behaviour: forever,
// quickly, and no publishing into a buffer while disconnected.
func (b *bench) connect() (*nats.Conn, jetstream.JetStream) {
	b.t.Helper()
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", b.port),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		b.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.t.Fatal(err)
	}
	return nc, js
}

// poolOpts adjust a pool before it runs.
type poolOpts struct {
	js      jetstream.JetStream // default: the bench's connection
	limiter *Limiter
	ledger  Ledger
	reg     *prometheus.Registry
	tune    func(*Pool)
}

// startPool runs a pool over rt and returns it with a stop function that
// cancels it and waits for Run to return (also called when the test ends).
func (b *bench) startPool(cfg Config, rt *Runtime, o poolOpts) (*Pool, func()) {
	b.t.Helper()
	js := o.js
	if js == nil {
		js = b.js
	}
	if rt.Log == nil {
		rt.Log = b.log
	}
	var reg prometheus.Registerer
	if o.reg != nil {
		reg = o.reg
	}
	p, err := NewPool(cfg, js, NewCatalog(), rt, o.limiter, b.log, reg)
	if err != nil {
		b.t.Fatal(err)
	}
	p.ledger = o.ledger
	if o.tune != nil {
		o.tune(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.t.Errorf("pool stopped with error: %v", err)
			}
		})
	}
	b.t.Cleanup(stop)
	return p, stop
}

// observed collects the ids of the jobs a pool reports through Observe.
type observed struct {
	mu  sync.Mutex
	ids []string
}

func (o *observed) tune(p *Pool) {
	p.Observe = func(j *job.Job) {
		o.mu.Lock()
		o.ids = append(o.ids, j.ID)
		o.mu.Unlock()
	}
}

func (o *observed) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ids)
}

// sim is the Comm100 simulator over real HTTP, with a client that spends
// limiter's budget, as the bot wires it.
type sim struct {
	*comm100test.Server
	url     string
	limiter *Limiter
	rt      *Runtime
}

func (b *bench) sim(cfg comm100test.Config, calls int, per time.Duration) *sim {
	b.t.Helper()
	s := comm100test.New(cfg)
	hs := httptest.NewServer(s)
	b.t.Cleanup(hs.Close)
	out := &sim{Server: s, url: hs.URL}
	out.limiter, out.rt = b.client(out, calls, per)
	return out
}

// client returns a runtime whose Comm100 client calls s through a limiter
// of its own.
func (b *bench) client(s *sim, calls int, per time.Duration) (*Limiter, *Runtime) {
	b.t.Helper()
	limiter := NewLimiter(calls, per, nil)
	site, email, key := s.Credentials()
	client, err := comm100.New(comm100.Config{
		BaseURL: s.url + comm100test.APIPrefix, SiteID: site, Email: email, APIKey: secret.String(key),
		Timeout: 5 * time.Second, RateLimit: comm100.RateLimit{Calls: calls, Per: per},
	}, &http.Client{Transport: &LimitedTransport{Limiter: limiter, Timeout: 5 * time.Second}})
	if err != nil {
		b.t.Fatal(err)
	}
	return limiter, b.runtime(client)
}

// runtime is what actions run with on this bench.
func (b *bench) runtime(c Comm100) *Runtime {
	return &Runtime{
		Comm100:   c,
		HTTP:      NewHTTPCaller(nil, 60, time.Minute, 5*time.Second),
		Events:    &ingest.JetStreamPublisher{JS: b.js},
		Schedules: b.queue,
		Log:       b.log,
	}
}

// publish queues jobs as the rules would.
func (b *bench) publish(jobs ...*job.Job) {
	b.t.Helper()
	for _, j := range jobs {
		if err := b.queue.Publish(b.t.Context(), j); err != nil {
			b.t.Fatal(err)
		}
	}
}

// publishCopy publishes a job again under another message id, as a
// re-publish after the duplicate window would.
func (b *bench) publishCopy(j *job.Job, msgID string) {
	b.t.Helper()
	data, _ := json.Marshal(j)
	msg := &nats.Msg{Subject: j.RunSubject(), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if _, err := b.js.PublishMsg(b.t.Context(), msg); err != nil {
		b.t.Fatal(err)
	}
}

// consumer returns the info of the pool's consumer name; an empty one until
// the pool has created it.
func (b *bench) consumer(name string) *jetstream.ConsumerInfo {
	b.t.Helper()
	c, err := b.js.Consumer(b.t.Context(), bus.ActionsStream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return &jetstream.ConsumerInfo{}
	}
	if err != nil {
		b.t.Fatal(err)
	}
	info, err := c.Info(b.t.Context())
	if err != nil {
		b.t.Fatal(err)
	}
	return info
}

// idle reports whether the pool has nothing left to do.
func (b *bench) idle() bool {
	n, err := JobsWaiting(b.t.Context(), b.js)
	return err == nil && n == 0
}

// waitRemoved waits until ACTIONS holds only want messages: the finished
// jobs are removed by the pool's sweeper, in the background.
func (b *bench) waitRemoved(want uint64) {
	b.t.Helper()
	stream, err := b.js.Stream(b.t.Context(), bus.ActionsStream)
	if err != nil {
		b.t.Fatal(err)
	}
	var left uint64
	waitFor(b.t, "the finished jobs removed from ACTIONS", 10*time.Second, func() bool {
		info, err := stream.Info(b.t.Context())
		if err == nil {
			left = info.State.Msgs
		}
		return err == nil && left == want
	})
}

func (b *bench) dead() []DeadLetter {
	b.t.Helper()
	d, err := b.dlq.List(b.t.Context())
	if err != nil {
		b.t.Fatal(err)
	}
	return d
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ticketJob is a ticket.create job, as the rules would make it.
func ticketJob(id string) *job.Job {
	return &job.Job{
		ID: id + "/r/0", EventID: id, Rule: "r", Action: "comm100.ticket.create",
		Params: map[string]any{"subject": "ticket " + id}, Created: time.Now().UTC(),
	}
}

// logJob is a "log" job whose message is id.
func logJob(id string) *job.Job {
	return &job.Job{ID: id + "/r/0", EventID: id, Rule: "r", Action: "log",
		Params: map[string]any{"message": id}, Created: time.Now().UTC()}
}

// request is an http.request job to url.
func request(id, url string) *job.Job {
	return &job.Job{ID: id + "/r/0", EventID: id, Rule: "r", Action: "http.request",
		Params: map[string]any{"url": url}, Created: time.Now().UTC()}
}

// calls counts the simulator's calls to method path that were answered status.
func calls(reqs []comm100test.Request, method, path string, status int) int {
	n := 0
	for _, r := range reqs {
		if r.Method == method && r.Path == path && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

func jobsMetric(t *testing.T, reg *prometheus.Registry, action, outcome string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bot_jobs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["action"] == action && labels["outcome"] == outcome {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// gauge reads the gauge called name from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
