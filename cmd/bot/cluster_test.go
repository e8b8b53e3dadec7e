package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/testenv"
)

// tcpProxy forwards the connections made to its address to target, until
// it is cut: then its listener and every connection close at once, as when
// a host dies or a cable is pulled. restore listens on the same address again.
type tcpProxy struct {
	addr string

	mu     sync.Mutex
	target string // "" until known: connections are closed until then
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.pipe(c) })
		}
	})
}

// setTarget sets where the proxy forwards to.
func (p *tcpProxy) setTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

func (p *tcpProxy) pipe(c net.Conn) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	if target == "" {
		c.Close() // a route dialling before its peer started tries again
		return
	}
	d, err := net.DialTimeout("tcp", target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		d.Close()
		return
	}
	p.conns[c], p.conns[d] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var both sync.WaitGroup
	both.Go(func() { _, _ = io.Copy(d, c); d.Close(); c.Close() })
	_, _ = io.Copy(c, d)
	c.Close()
	d.Close()
	both.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, d)
	p.mu.Unlock()
}

// cut closes the listener and every connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// restore listens on the proxy's address again.
func (p *tcpProxy) restore(t testing.TB) {
	t.Helper()
	var ln net.Listener
	eventually(t, "the proxy's port to be free again", 10*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	})
	p.serve(ln)
}

func (p *tcpProxy) url() string { return "nats://" + p.addr }

// natsCluster is a 3-node NATS JetStream cluster on loopback, each node
// with its own store. The routes between nodes go through proxies, so that
// a node can be lost abruptly: its peers see its routes drop without a word
// (no leadership handed over) and elect new leaders after their election
// timeout, as when its host dies.
type natsCluster struct {
	t     testing.TB
	nodes []*natsNode
	links map[[2]int]*tcpProxy // from node i to node j's route port
}

type natsNode struct {
	name       string
	opts       server.Options
	clientPort int
	srv        *server.Server
}

func startNATSCluster(t testing.TB, size int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, links: map[[2]int]*tcpProxy{}}
	for i := range size {
		c.nodes = append(c.nodes, &natsNode{name: fmt.Sprintf("n%d", i+1)})
	}
	// The routes go through proxies, which learn their targets once the
	// nodes listen: each node takes ports of its own choosing, none that
	// another process could take between a test picking it and the node
	// listening on it.
	for i := range size {
		for j := range size {
			if i != j {
				c.links[[2]int{i, j}] = newTCPProxy(t, "")
			}
		}
	}
	dirs := make([]string, size)
	for i, n := range c.nodes {
		dirs[i] = t.TempDir()
		var routes []*url.URL
		for j := range size {
			if i != j {
				u, _ := url.Parse("nats://" + c.links[[2]int{i, j}].addr)
				routes = append(routes, u)
			}
		}
		n.opts = server.Options{
			ServerName: n.name, Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: dirs[i], NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "bot", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoAdvertise: true},
			Routes:  routes,
		}
	}
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { c.start(i) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.srv != nil {
				n.srv.Shutdown()
			}
		}
	})
	c.waitJetStream()
	return c
}

func (c *natsCluster) start(i int) {
	n := c.nodes[i]
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		c.t.Error(err)
		return
	}
	srv.Start()
	// Generous: on a busy machine a node has taken over 10s to start.
	start := time.Now()
	if !srv.ReadyForConnections(30 * time.Second) {
		c.t.Errorf("nats node %s not ready in %s", n.name, time.Since(start).Round(time.Millisecond))
	} else if took := time.Since(start); took > 5*time.Second {
		c.t.Logf("nats node %s took %s to start", n.name, took.Round(time.Millisecond))
	}
	n.srv = srv
	// Started again (revive), the node listens where it did: its clients
	// and its peers' proxies know those ports.
	if addr, ok := srv.Addr().(*net.TCPAddr); ok {
		n.clientPort, n.opts.Port = addr.Port, addr.Port
	}
	if addr := srv.ClusterAddr(); addr != nil {
		n.opts.Cluster.Port = addr.Port
		for k, p := range c.links {
			if k[1] == i {
				p.setTarget(addr.String())
			}
		}
	}
}

// waitJetStream waits until the cluster can place a stream on all its
// nodes: it has a meta leader, and the leader knows every peer.
func (c *natsCluster) waitJetStream() {
	c.t.Helper()
	nc, err := nats.Connect(c.urls())
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	eventually(c.t, "the JetStream cluster to place a stream on every node", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Second)
		defer cancel()
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe"}, Replicas: len(c.nodes)})
		return err == nil && js.DeleteStream(ctx, "PROBE") == nil
	})
}

func (c *natsCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", n.clientPort))
	}
	return strings.Join(us, ",")
}

func (c *natsCluster) index(name string) int {
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	c.t.Fatalf("no node %q", name)
	return -1
}

// kill loses node i abruptly: its routes are cut first, so that it cannot
// hand its leaderships over, then it stops (its clients lose their
// connections).
func (c *natsCluster) kill(i int) {
	for k, p := range c.links {
		if k[0] == i || k[1] == i {
			p.cut()
		}
	}
	c.nodes[i].srv.Shutdown()
	c.nodes[i].srv.WaitForShutdown()
	c.nodes[i].srv = nil
}

// revive starts node i again on its store, and reconnects its routes.
func (c *natsCluster) revive(i int) {
	for k, p := range c.links {
		if k[0] == i || k[1] == i {
			p.restore(c.t)
		}
	}
	c.start(i)
}

// simGate stands between one bot and the simulator, as that bot's network:
// freeze stops its calls from reaching the simulator (they wait, then fail),
// as when its process dies.
type simGate struct {
	sim http.Handler

	mu       sync.Mutex
	frozen   bool
	thaw     chan struct{}
	inFlight int
	created  int // calls that the simulator answered 201
}

func (g *simGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.frozen {
		thaw := g.thaw
		g.mu.Unlock()
		<-thaw
		panic(http.ErrAbortHandler) // the connection drops without an answer
	}
	g.inFlight++
	g.mu.Unlock()
	rec := &statusCapture{ResponseWriter: w, status: http.StatusOK}
	g.sim.ServeHTTP(rec, r)
	g.mu.Lock()
	g.inFlight--
	if rec.status == http.StatusCreated {
		g.created++
	}
	g.mu.Unlock()
}

type statusCapture struct {
	http.ResponseWriter
	status int
}

func (s *statusCapture) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (g *simGate) freeze() {
	g.mu.Lock()
	g.frozen, g.thaw = true, make(chan struct{})
	g.mu.Unlock()
}

// drop fails the calls held by freeze.
func (g *simGate) drop() {
	g.mu.Lock()
	if g.frozen {
		close(g.thaw)
		g.thaw = make(chan struct{}) // later calls wait for nothing: the process is gone
	}
	g.mu.Unlock()
}

func (g *simGate) settled() (inFlight, created int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight, g.created
}

// clusterBot is one bot replica of the cluster test: its own HTTP server,
// its own way to each NATS node and to the simulator, so that it can be
// killed abruptly.
type clusterBot struct {
	name  string
	a     *app
	links []*tcpProxy
	gate  *simGate
	done  chan error
	stop  context.CancelFunc
}

type clusterSetup struct {
	cluster  *natsCluster
	sim      *comm100test.Server // nil: no Comm100 credentials, actions run dry
	rulesDir string
	calls    int
	per      time.Duration
	logLevel slog.Level
}

func (s *clusterSetup) startBot(t testing.TB, name string) *clusterBot {
	t.Helper()
	b, err := s.tryBot(t, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// superviseBot starts a bot as systemd or Kubernetes would: again and
// again until it starts (it cannot while the cluster has no leaders).
func (s *clusterSetup) superviseBot(t *testing.T, name string, within time.Duration) (*clusterBot, int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for tries := 1; ; tries++ {
		b, err := s.tryBot(t, name)
		if err == nil {
			return b, tries
		}
		if time.Now().After(deadline) {
			t.Fatalf("bot %s did not start in %s: %v", name, within, err)
		}
		t.Logf("bot %s did not start (restarting it): %v", name, err)
		time.Sleep(time.Second)
	}
}

func (s *clusterSetup) tryBot(t testing.TB, name string) (*clusterBot, error) {
	t.Helper()
	b := &clusterBot{name: name, gate: &simGate{sim: s.sim}, done: make(chan error, 1)}
	var urls []string
	for _, n := range s.cluster.nodes {
		p := newTCPProxy(t, fmt.Sprintf("127.0.0.1:%d", n.clientPort))
		b.links = append(b.links, p)
		urls = append(urls, p.url())
	}
	args := []string{
		"--http.addr", "127.0.0.1:0",
		"--http.admin_addr", "127.0.0.1:0",
		"--nats.url", strings.Join(urls, ","),
		"--nats.replicas", "3",
		"--rules.dir", s.rulesDir,
		"--rules.watch=false",
		"--dispatch.workers", "4",
	}
	var environ []string
	if s.sim != nil {
		hs := httptest.NewServer(b.gate)
		t.Cleanup(hs.Close)
		site, email, key := s.sim.Credentials()
		environ = append(environ, "BOT_COMM100__API_KEY="+key)
		args = append(args,
			"--comm100.base_url", hs.URL+comm100test.APIPrefix,
			"--comm100.site_id", site, "--comm100.email", email,
			"--comm100.timeout", "5s",
			"--comm100.rate_limit.calls", fmt.Sprint(s.calls),
			"--comm100.rate_limit.per", s.per.String(),
			"--comm100.rate_limit.shared")
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	configFlags(fs)
	err := fs.Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(fs, environ)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: s.logLevel})).With("bot", name)
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	b.a, err = newApp(ctx, cfg, log)
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		err := b.a.run(ctx)
		if err != nil {
			log.Error("bot stopped", "err", err)
		}
		b.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		b.gate.drop()
		<-b.done
	})
	return b, nil
}

// waitWorking waits until every bot's pool is pulling jobs (one pull
// request each): the bots have finished starting.
func waitWorking(t testing.TB, js jetstream.JetStream, bots int) {
	t.Helper()
	eventually(t, "every bot's pool to pull jobs", 30*time.Second, func() bool {
		for _, name := range bus.PoolConsumers {
			c, err := js.Consumer(t.Context(), bus.ActionsStream, name)
			if err != nil {
				return false
			}
			if info, err := c.Info(t.Context()); err != nil || info.NumWaiting < bots {
				return false
			}
		}
		return true
	})
}

func (b *clusterBot) url() string { return "http://" + b.a.Addr() + "/hooks/comm100" }

// terminate stops the bot as SIGTERM does: webhooks stop, jobs in hand are
// handed back.
func (b *clusterBot) terminate() { b.stop() }

// kill stops the bot as SIGKILL does, at a moment when it has no call at
// Comm100 whose answer it has not recorded (a call cut short there would be
// repeated, with no way for Comm100 to tell): its next calls never leave,
// and NATS hears nothing more from it: no acknowledgement, no budget
// released.
func (b *clusterBot) kill(t *testing.T) {
	t.Helper()
	b.gate.freeze()
	waitFor(t, "the bot's calls at Comm100 to be answered and recorded", 10*time.Second, func() bool {
		inFlight, created := b.gate.settled()
		return inFlight == 0 && metricValue(t, b.a, `bot_jobs_total{action="comm100.ticket.create",outcome="done"}`) == fmt.Sprint(created)
	})
	for _, p := range b.links {
		p.cut()
	}
	b.gate.drop()
	b.stop()
}

// webhookAnswer is one answer to one post of an event.
type webhookAnswer struct {
	chat   int
	at     time.Time
	took   time.Duration
	status int
}

// sender posts events as Comm100 would: each until it is accepted, to the
// replicas in turn (a load balancer), again after a short wait on a 503.
type sender struct {
	mu       sync.Mutex
	bots     []*clusterBot
	answers  []webhookAnswer
	accepted map[int]bool
	wg       sync.WaitGroup
}

func (s *sender) setBots(bots ...*clusterBot) {
	s.mu.Lock()
	s.bots = bots
	s.mu.Unlock()
}

func (s *sender) send(ctx context.Context, t *testing.T, chat int) {
	body := lowRatedChat(t, chat)
	s.wg.Go(func() {
		for try := 0; ctx.Err() == nil; try++ {
			s.mu.Lock()
			target := s.bots[(chat+try)%len(s.bots)].url()
			s.mu.Unlock()
			start := time.Now()
			status := 0
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			s.mu.Lock()
			s.answers = append(s.answers, webhookAnswer{chat: chat, at: time.Now(), took: time.Since(start), status: status})
			if status == http.StatusAccepted || status == http.StatusOK {
				s.accepted[chat] = true
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	})
}

// refusals sums up the answers that were not 2xx: how many, the longest
// stretch of time in which every answer was a refusal, and the longest a
// single post was held.
func (s *sender) refusals() (n int, longest, held time.Duration) {
	s.mu.Lock()
	answers := append([]webhookAnswer(nil), s.answers...)
	s.mu.Unlock()
	sort.Slice(answers, func(i, j int) bool { return answers[i].at.Before(answers[j].at) })
	var since time.Time
	for _, a := range answers {
		held = max(held, a.took)
		ok := a.status == http.StatusAccepted || a.status == http.StatusOK
		switch {
		case !ok:
			n++
			if since.IsZero() {
				since = a.at.Add(-a.took)
			}
		case !since.IsZero():
			longest = max(longest, a.at.Sub(since))
			since = time.Time{}
		}
	}
	return n, longest, held
}

// clusterScenario is the cluster test's load and faults.
type clusterScenario struct {
	events      int           // chats posted
	interval    time.Duration // between chats
	calls       int           // the Comm100 budget
	per         time.Duration
	killNodeAt  int  // after this many chats, the EVENTS leader's node dies
	killBotAt   int  // after this many, a bot dies
	reviveAt    int  // after this many, both come back (once EVENTS has a new leader)
	sigkill     bool // the bot dies abruptly (else it is stopped as by SIGTERM)
	drainWithin time.Duration
}

func runClusterScenario(t *testing.T, sc clusterScenario) {
	start := time.Now()
	cluster := startNATSCluster(t, 3)
	sim := comm100test.New(comm100test.Config{RateLimit: comm100test.IPRateLimit{Calls: sc.calls, Per: sc.per}})
	setup := &clusterSetup{cluster: cluster, sim: sim, calls: sc.calls, per: sc.per, logLevel: slog.LevelInfo, rulesDir: writeRules(t, `rules:
  - name: low-rated-chat-ticket
    on: comm100.chat.ended
    when: data.chat.rating <= 2
    actions:
      - do: comm100.ticket.create
        with:
          subject: "Low rating on chat {{ data.chat.id }}"
`)}
	bots := []*clusterBot{setup.startBot(t, "bot-1"), setup.startBot(t, "bot-2"), setup.startBot(t, "bot-3")}
	js := bots[0].a.bus.JS
	waitWorking(t, js, len(bots))
	s := &sender{accepted: map[int]bool{}}
	s.setBots(bots...)
	ctx, cancel := context.WithTimeout(t.Context(), sc.drainWithin+time.Minute)
	defer cancel()
	t.Logf("cluster and %d bots up in %s", len(bots), time.Since(start).Round(time.Millisecond))

	var killedNode = -1
	var nodeLost, loadStart time.Time
	revived := false
	revive := func(chat int) {
		t.Logf("EVENTS led by another node, seen %s after the loss", time.Since(nodeLost).Round(time.Millisecond))
		cluster.revive(killedNode)
		var tries int
		bots[1], tries = setup.superviseBot(t, "bot-2b", sc.drainWithin)
		s.setBots(bots...)
		t.Logf("node and bot back after %d chats (the bot started at try %d)", chat, tries)
	}
	loadStart = time.Now()
	tick := time.NewTicker(sc.interval)
	for chat := 1; chat <= sc.events; chat++ {
		<-tick.C
		s.send(ctx, t, chat)
		switch chat {
		case sc.killNodeAt:
			info, err := js.Stream(ctx, bus.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			si := info.CachedInfo()
			if fresh, err := info.Info(ctx); err == nil {
				si = fresh
			}
			killedNode = cluster.index(si.Cluster.Leader)
			nodeLost = time.Now()
			cluster.kill(killedNode)
			t.Logf("node %s (leader of %s) lost after %d chats", si.Cluster.Leader, bus.EventsStream, chat)
		case sc.killBotAt:
			s.setBots(bots[0], bots[2])
			if sc.sigkill {
				bots[1].kill(t)
			} else {
				bots[1].terminate()
			}
			t.Logf("bot-2 stopped (sigkill %v) after %d chats", sc.sigkill, chat)
		}
		// Both come back once EVENTS has a new leader: the election, which
		// a node's return could cut short, is part of what is measured.
		if chat >= sc.reviveAt && !revived && leaderOf(ctx, js, bus.EventsStream, cluster.nodes[killedNode].name) {
			revived = true
			revive(chat)
		}
	}
	tick.Stop()
	loadEnd := time.Now()
	if !revived {
		eventually(t, "EVENTS to elect a new leader", sc.drainWithin, func() bool {
			return leaderOf(ctx, js, bus.EventsStream, cluster.nodes[killedNode].name)
		})
		revive(sc.events)
	}

	// Every chat accepted, every ticket made, nothing left on the bus.
	waitFor(t, "every chat to be accepted", sc.drainWithin, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.accepted) == sc.events
	})
	js = bots[0].a.bus.JS
	waitFor(t, "a ticket for every chat", sc.drainWithin, func() bool {
		if n := countStatus(sim.Requests(), http.StatusForbidden); n > 0 {
			t.Fatalf("the simulator refused %d calls for the rate limit", n)
		}
		return len(ticketCalls(sim)) >= sc.events
	})
	lastTicket := time.Now()
	var state string
	idle := func(stream, consumer string) bool {
		c, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			state = fmt.Sprintf("consumer %s/%s: %v", stream, consumer, err)
			return false
		}
		info, err := c.Info(ctx)
		if err != nil {
			state = fmt.Sprintf("consumer %s/%s: %v", stream, consumer, err)
			return false
		}
		state = fmt.Sprintf("consumer %s/%s: %d pending, %d waiting for an ack", stream, consumer, info.NumPending, info.NumAckPending)
		return info.NumPending == 0 && info.NumAckPending == 0
	}
	drained := func() bool {
		for _, name := range bus.PoolConsumers {
			if !idle(bus.ActionsStream, name) {
				return false
			}
		}
		return idle(bus.EventsStream, bus.RulesConsumer)
	}
	deadline := time.Now().Add(sc.drainWithin)
	for !drained() {
		if time.Now().After(deadline) {
			t.Fatalf("still not idle after %s: %s", sc.drainWithin, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
	idleAt := time.Now()
	s.wg.Wait()

	reqs := sim.Requests()
	perChat := map[int]int{}
	tickets := 0
	for _, r := range ticketCalls(sim) {
		if r.Status != http.StatusCreated {
			continue
		}
		tickets++
		var body struct{ Subject string }
		var chat int
		_ = json.Unmarshal(r.Body, &body)
		_, _ = fmt.Sscanf(body.Subject, "Low rating on chat %d", &chat)
		perChat[chat]++
	}
	duplicates := 0
	for chat := 1; chat <= sc.events; chat++ {
		switch n := perChat[chat]; {
		case n > 1:
			duplicates += n - 1
			t.Errorf("chat %d: %d tickets, want 1", chat, n)
		case n == 0:
			t.Errorf("chat %d: accepted but no ticket", chat)
		}
	}
	if n := countStatus(reqs, http.StatusForbidden); n > 0 {
		t.Errorf("the simulator refused %d calls for the rate limit", n)
	}
	most := windowMax(reqs, sc.per)
	if most > sc.calls {
		t.Errorf("a window of %s held %d calls, the budget is %d", sc.per, most, sc.calls)
	}
	names, problems, err := replicaProblems(ctx, js, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	refused, stretch, held := s.refusals()
	// With a backlog the budget allows one batch of calls per window: the
	// last ticket can come no sooner than this after the first call.
	made := ticketCalls(sim)
	soonest := made[0].Time.Add(time.Duration((len(made)-1)/sc.calls) * sc.per)
	var unreachable, conflicts float64
	for _, b := range bots {
		unreachable += metricFloat(t, b.a, "bot_limiter_budget_unreachable_total")
		conflicts += metricFloat(t, b.a, "bot_limiter_budget_conflicts_total")
	}
	t.Logf("accepted %d of %d chats; tickets %d; duplicates %d; calls %d, at most %d in a window of %s (budget %d); "+
		"webhooks refused %d times, longest stretch of refusals %s, longest held %s; "+
		"last ticket %s after the node was lost, %s after the last chat, %s later than the budget allows at best; "+
		"nothing pending %s after the node was lost; "+
		"load %s; budget unreachable %.0f times, write conflicts %.0f (live bots); %d streams and consumers at 3 replicas",
		len(s.accepted), sc.events, tickets, duplicates, len(reqs), most, sc.per, sc.calls,
		refused, stretch.Round(time.Millisecond), held.Round(time.Millisecond),
		lastTicket.Sub(nodeLost).Round(time.Millisecond), lastTicket.Sub(loadEnd).Round(time.Millisecond),
		made[len(made)-1].Time.Sub(soonest).Round(time.Millisecond), idleAt.Sub(nodeLost).Round(time.Millisecond),
		loadEnd.Sub(loadStart).Round(time.Millisecond), unreachable, conflicts, len(names))
}

// TestClusterLosesANodeAndABot runs three bots on a 3-node NATS cluster
// against the simulator with a small budget, shared. Mid-load the node that
// leads EVENTS is lost abruptly and a bot is stopped; both come back. Every
// chat is accepted (the sender retries on 503) and makes exactly one ticket,
// the simulator never refuses a call for the limit, no window holds more
// than the budget, and nothing is left pending.
func TestClusterLosesANodeAndABot(t *testing.T) {
	t.Parallel() // mostly waiting for the budget and for elections
	runClusterScenario(t, clusterScenario{
		events: 40, interval: 150 * time.Millisecond, calls: 20, per: 5 * time.Second,
		killNodeAt: 4, killBotAt: 8, reviveAt: 30,
		drainWithin: 45 * time.Second,
	})
}

// TestClusterLosesANodeAndABotLong is the same with four times the chats,
// and the bot killed as by SIGKILL: its jobs in hand come back only after
// their ack wait, and its budget slots in flight only after their lease.
func TestClusterLosesANodeAndABotLong(t *testing.T) {
	testenv.Long(t)
	runClusterScenario(t, clusterScenario{
		events: 200, interval: 100 * time.Millisecond, calls: 20, per: 5 * time.Second,
		killNodeAt: 40, killBotAt: 60, reviveAt: 150, sigkill: true,
		drainWithin: 2 * time.Minute,
	})
}

func metricFloat(t *testing.T, a *app, name string) float64 {
	t.Helper()
	var v float64
	_, _ = fmt.Sscan(metricValue(t, a, name), &v)
	return v
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lowRatedChat returns a chat-ended webhook body for chat id, rated 1.
func lowRatedChat(tb testing.TB, id int) []byte {
	tb.Helper()
	var body map[string]any
	data, err := os.ReadFile("../../rules/testdata/chat_ended_low_rating.json")
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(data, &body); err != nil {
		tb.Fatal(err)
	}
	body["chat"].(map[string]any)["id"] = id
	out, _ := json.Marshal(body)
	return out
}

// leaderOf reports whether stream has a leader other than the node lost.
func leaderOf(ctx context.Context, js jetstream.JetStream, stream, lost string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return false
	}
	info, err := st.Info(ctx)
	return err == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != lost
}
