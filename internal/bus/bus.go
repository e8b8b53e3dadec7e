// Package bus sets up the NATS JetStream bus the bot runs on: an embedded
// nats-server when no URL is configured, the connection, the streams, and
// the names of the consumers and buckets that the rules router and the worker
// pool create for themselves.
package bus

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says where the bus is and how the streams are sized.
type Config struct {
	// URL of an external NATS server or cluster. Empty runs an embedded server.
	URL string `koanf:"url"`
	// StoreDir is where the embedded server keeps its JetStream files. Default "./data".
	StoreDir string `koanf:"store_dir"`
	// Listen is the client address of the embedded server, so that `bot dlq`
	// and other commands can reach a running bot. Default "127.0.0.1:4222";
	// "127.0.0.1:-1" picks a free port.
	Listen string `koanf:"listen"`
	// Replicas of each stream (1 for a single server, 3 for a cluster). Default 1.
	Replicas int `koanf:"replicas"`
	// DedupWindow is how long a repeated event id is recognised and dropped
	// (by ingest, which remembers the ids; the streams keep them for
	// MsgIDWindow at most). Default 2m.
	DedupWindow time.Duration `koanf:"dedup_window"`
	// EventsMaxAge is how long events are kept for replay. Default 168h (7 days).
	EventsMaxAge time.Duration `koanf:"events_max_age"`
	// Sync is when the embedded server makes what it stored durable on
	// disk: "always" (each write is synced before it is acknowledged, so a
	// 202 survives a power loss) or an interval such as "1s" or "2m" (NATS's
	// default; a 202 survives the process being killed, but a power loss can
	// take what was written since the last sync). Default "always".
	Sync string `koanf:"sync"`
	// MaxStore bounds the embedded server's JetStream files, in bytes. When
	// they reach it, webhooks are answered 503 and /readyz reports not ready
	// until old events expire or are removed. Default 0: three quarters of
	// the disk space free when the bot starts (NATS's default), grown again
	// when space is freed.
	MaxStore int64 `koanf:"max_store"`
}

// SyncAlways is the value of Sync that syncs every write.
const SyncAlways = "always"

// syncOptions turns Sync into the server's options.
func (c *Config) syncOptions() (interval time.Duration, always bool, err error) {
	if c.Sync == SyncAlways {
		return 0, true, nil
	}
	d, err := time.ParseDuration(c.Sync)
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("nats.sync: want %q or a positive duration such as 1s or 2m, got %q", SyncAlways, c.Sync)
	}
	return d, false, nil
}

// RulesAckWait is how long the rules have to store an event's jobs and
// acknowledge it before JetStream delivers the event to them again.
const RulesAckWait = 30 * time.Second

// batches reports whether the publishers commit what queues up as atomic
// batches: with an embedded server that syncs every write (see Batcher).
func (c *Config) batches() bool {
	_, always, err := c.syncOptions()
	return c.URL == "" && always && err == nil
}

// Validate checks the settings of the embedded server.
func (c *Config) Validate() error {
	if _, _, err := c.syncOptions(); err != nil {
		return err
	}
	if c.MaxStore < 0 {
		return fmt.Errorf("nats.max_store: want 0 (three quarters of the free disk) or a number of bytes, got %d", c.MaxStore)
	}
	return nil
}

// Defaults fills the zero fields with their documented defaults.
func (c *Config) Defaults() {
	if c.StoreDir == "" {
		c.StoreDir = "./data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4222"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 2 * time.Minute
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = 7 * 24 * time.Hour
	}
	if c.Sync == "" {
		c.Sync = SyncAlways
	}
}

// MsgIDWindow is how long the EVENTS and ACTIONS streams remember message
// ids, at most: long enough for a publish retried after a lost answer, and
// for copies that two replicas store at the same moment. Each id costs the
// server a map entry and a string, which the collector walks in every cycle.
// Repeats that come later are stopped by other means: events by the ids that
// ingest remembers for nats.dedup_window (ingest.RecentIDs), jobs by their
// subjects and the pool's records (see Setup).
const MsgIDWindow = 10 * time.Second

// Names of the streams, consumers and buckets.
const (
	EventsStream  = "EVENTS"
	ActionsStream = "ACTIONS"
	DeadStream    = "DLQ"
	RulesConsumer = "rules"
	// WorkerConsumer is the pool's consumer of the jobs that call no
	// Comm100 API, Comm100Consumer of those that do. OneLaneConsumer was
	// the consumer of every job, when the pool had one lane; the pool
	// leaves it to the replicas of such a version (see actions.Pool).
	WorkerConsumer  = "other-workers"
	Comm100Consumer = "comm100-workers"
	OneLaneConsumer = "workers"
	DoneBucket      = "jobs_done"
	AttemptsBucket  = "jobs_attempts"

	EventsSubjects  = "events.>"
	ActionsSubjects = "actions.>"
	DeadSubjects    = "dlq.>"

	// ParkedSubjectPrefix is where the DLQ keeps the events that a rule
	// could not decode or evaluate: dlq.events.<source>.<type>. Dead jobs
	// are on dlq.<action>.
	ParkedSubjectPrefix = "dlq.events."

	// EventIDHeader carries the id an event was first stored under on a
	// copy of it (redriven from the DLQ, replayed), whose message id is
	// its own.
	EventIDHeader = "Bot-Event-Id"

	// KeyedHeader marks an event stored under its key, <source>/<id>, as
	// its message id; an event an earlier version stored under its bare
	// id has none. Ids may hold "/", so the id alone cannot tell.
	KeyedHeader = "Bot-Keyed"

	// EvaluateAtHeader, on a replayed event, is the time (RFC 3339) at
	// which the rules evaluate it, instead of when they read it: the time
	// it was first stored (bot events replay --at-event-time).
	EvaluateAtHeader = "Bot-Evaluate-At"
)

// PoolConsumers are the pool's consumers of ACTIONS, one for each of its
// lanes.
var PoolConsumers = [...]string{Comm100Consumer, WorkerConsumer}

// Bus is a connection to JetStream, and the embedded server when there is one.
type Bus struct {
	Conn *nats.Conn
	JS   jetstream.JetStream
	// srv is the embedded server, nil with an external one. Run replaces
	// it with a new one on the same port and store to clear a storage error.
	srv atomic.Pointer[server.Server]
	// srvOpts is what the embedded server was started with, its port fixed
	// to the one it took, to start it again the same way (see Run).
	srvOpts *server.Options
	// storeLimitSet is true when nats.max_store was given, rather than
	// derived by the server from the free disk space.
	storeLimitSet bool
	storeDir      string
	log           *slog.Logger
	url           string

	// batches is true when atomic batches pay: an embedded server that
	// syncs every write (see Batches).
	batches bool

	mu    sync.Mutex
	extra []*nats.Conn
	// closing is set once Close starts: a connection closed after it is
	// not broken.
	closing atomic.Bool

	// stuckAfter is how long a health check of the embedded server may go
	// unanswered before Run takes the server for stuck (stuckAfter, but in
	// tests); stuck holds what Run said then.
	stuckAfter time.Duration
	stopWait   time.Duration // stopWait, but in tests
	stuck      atomic.Pointer[error]
	restarting atomic.Bool // Run's check is starting JetStream again
	// checkStore is storeErr, but in tests.
	checkStore func(*server.Server) error
	// probe is Ready's check of the embedded server under way, nil if
	// none: later calls wait for its answer rather than start another.
	probeMu sync.Mutex
	probe   *probe
}

// probe is one check of the embedded server: err is its answer once done
// is closed.
type probe struct {
	done chan struct{}
	err  error
}

// Batches reports whether the publishers should commit messages that arrive
// together as atomic batches (see Batcher): true with an embedded server
// that syncs every write to disk, where one sync per batch instead of one
// per message multiplies what a stream takes. An external server's sync
// setting is not known to the bot, so its messages go one by one.
func (b *Bus) Batches() bool { return b.batches }

// Open starts the embedded server if cfg.URL is empty, connects, and returns
// the bus. The connection reconnects forever; Close shuts everything down.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	cfg.Defaults()
	b := &Bus{log: log, stuckAfter: stuckAfter, stopWait: stopWait, checkStore: storeErr}
	url := cfg.URL
	if url == "" {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := b.startEmbedded(cfg); err != nil {
			return nil, err
		}
		url = b.srv.Load().ClientURL()
		b.batches = cfg.batches()
		log.Info("embedded NATS server started", "url", url, "store_dir", cfg.StoreDir, "sync", cfg.Sync)
	}
	b.url = url
	nc, err := b.connect("bot")
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(url), err)
	}
	b.Conn = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	b.JS = withCreateRetries(js)
	return b, nil
}

// Connect opens another connection to the same server, named name, for a
// part of the bot whose traffic should not queue behind the others' on one
// socket (the rules router and the worker pool each have their own). Close
// closes it.
func (b *Bus) Connect(name string) (jetstream.JetStream, error) {
	nc, err := b.connect(name)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(b.url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	b.mu.Lock()
	b.extra = append(b.extra, nc)
	b.mu.Unlock()
	return withCreateRetries(js), nil
}

func (b *Bus) connect(name string) (*nats.Conn, error) {
	log := b.log.With("conn", name)
	return nats.Connect(b.url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.RetryOnFailedConnect(false),
		// No publishing into a buffer while disconnected: a publish fails at
		// once, so ingest answers 503 for an event that is not stored, rather
		// than an event flushed minutes later after the sender was told 503
		// (and may have given up, or retry after the duplicate window).
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(c *nats.Conn) {
			if !b.closing.Load() {
				log.Error("NATS connection closed for good; /healthz reports it so that the bot is restarted", "err", c.LastError())
			}
		}),
	)
}

// Broken reports a connection of the bus that closed for good while the
// bus was open: one the server refused to serve further (a protocol error),
// which the client does not reconnect. Only a restart mends it; it is what
// GET /healthz answers. A connection that is only reconnecting is not
// broken (see Ready).
func (b *Bus) Broken() error {
	if b.closing.Load() {
		return nil
	}
	if err := b.stuck.Load(); err != nil {
		return *err
	}
	b.mu.Lock()
	conns := append([]*nats.Conn{b.Conn}, b.extra...)
	b.mu.Unlock()
	for _, c := range conns {
		if c != nil && c.IsClosed() {
			return fmt.Errorf("NATS connection %q closed for good: %v", c.Opts.Name, c.LastError())
		}
	}
	return nil
}

// startEmbedded starts the embedded server and says at once why it could
// not: a store directory that takes no writes, a port in use, JetStream
// refusing its store.
func (b *Bus) startEmbedded(cfg Config) error {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("nats.listen %q: want host:port: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("nats.listen %q: port is not a number", cfg.Listen)
	}
	if err := checkWritable(cfg.StoreDir); err != nil {
		return fmt.Errorf("nats.store_dir: %w", err)
	}
	interval, always, _ := cfg.syncOptions()
	opts := &server.Options{
		ServerName:        "bot-embedded",
		Host:              host,
		Port:              port,
		JetStream:         true,
		StoreDir:          cfg.StoreDir,
		JetStreamMaxStore: cfg.MaxStore,
		SyncInterval:      interval,
		SyncAlways:        always,
		NoSigs:            true,
	}
	srv, err := newEmbedded(opts, b.log, cfg.Listen, cfg.StoreDir)
	if err != nil {
		return err
	}
	b.srv.Store(srv)
	b.storeDir = cfg.StoreDir
	b.storeLimitSet = cfg.MaxStore > 0
	// A start again must take the same port, which "-1" would not.
	again := *opts
	if addr, ok := srv.Addr().(*net.TCPAddr); ok {
		again.Port = addr.Port
	}
	b.srvOpts = &again
	return nil
}

// newEmbedded starts an embedded server with opts and waits until it takes
// connections, returning the server's own fatal statement when it cannot.
func newEmbedded(opts *server.Options, log *slog.Logger, listen, storeDir string) (*server.Server, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	srvLog := newServerLog(log)
	srv.SetLoggerV2(srvLog, false, false, false)
	// Start enables JetStream and binds the port before it returns; either
	// failing is a fatal statement in the server's log.
	srv.Start()
	if msg := srvLog.fatalStatement(); msg != "" {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s with store %s: %s", listen, storeDir, msg)
	}
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		if msg := srvLog.fatalStatement(); msg != "" {
			return nil, fmt.Errorf("embedded NATS server on %s with store %s: %s", listen, storeDir, msg)
		}
		return nil, fmt.Errorf("embedded NATS server did not become ready on %s within 10s", listen)
	}
	return srv, nil
}

// checkWritable makes dir if needed and writes a file in it, so that a
// store the server cannot use is reported with its cause before the server
// starts.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("%s does not take writes: %w", dir, err)
	}
	name := f.Name()
	err = f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("%s does not take writes: %w", dir, err)
	}
	return nil
}

// HasRoom reports whether the embedded server's disk has room for small
// writes (writeRoom free): false only when it has not. With an external
// server, whose disks the bot does not see, it is always true.
func (b *Bus) HasRoom() bool {
	if !b.Embedded() {
		return true
	}
	free, ok := diskFree(b.storeDir)
	return !ok || free >= writeRoom
}

// writeRoom is the free space below which HasRoom says no.
const writeRoom = 4 << 20

// Embedded reports whether the bus runs its own NATS server.
func (b *Bus) Embedded() bool { return b.srv.Load() != nil }

// Connected reports whether the client is currently connected.
func (b *Bus) Connected() bool { return b.Conn != nil && b.Conn.IsConnected() }

// Close drains the connections and stops the embedded server.
func (b *Bus) Close() {
	b.closing.Store(true)
	b.mu.Lock()
	conns := append(b.extra, b.Conn)
	b.extra = nil
	b.mu.Unlock()
	for _, c := range conns {
		if c != nil {
			_ = c.Drain()
		}
	}
	// Drain is asynchronous; wait a bounded time for it to finish.
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range conns {
		if c == nil {
			continue
		}
		for !c.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		c.Close()
	}
	if b.stuck.Load() != nil {
		// Its shutdown would wait for the locks it is stuck on: the
		// process exits with its files as they are.
		b.log.Warn("the embedded NATS server is stuck; leaving it without a shutdown")
		return
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if srv := b.srv.Load(); srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Setup creates or updates the EVENTS, ACTIONS and DLQ streams. It is safe
// to call on every start and from several replicas at once. The consumers and
// the key-value buckets are created by their owners (rules.Router,
// actions.Pool) when they start.
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg.Defaults()
	streams := []jetstream.StreamConfig{
		{
			Name:        EventsStream,
			Description: "accepted webhook events, deduplicated by event id",
			Subjects:    []string{EventsSubjects},
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  min(cfg.DedupWindow, MsgIDWindow),
			MaxAge:      cfg.EventsMaxAge,
			// Ingest commits the events of concurrent webhooks together.
			AllowAtomicPublish: cfg.batches(),
		},
		{
			Name:        ActionsStream,
			Description: "jobs for the worker pool, and the schedules of delayed jobs",
			Subjects:    []string{ActionsSubjects},
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			// A job is stored again when its event comes back to the
			// rules: a publish retried after a lost answer, an event whose
			// ack was lost, a redrive. Each job has a subject of its own
			// and is published only if its subject is empty (see
			// actions.Queue), so a copy is refused for as long as the job
			// is in the stream, however long it waits; after it is
			// removed, the pool's record of finished jobs stops the copy.
			// Message ids are still set (a cluster checks them before the
			// subject) but remembered briefly: each costs memory.
			Duplicates:        min(cfg.DedupWindow, MsgIDWindow),
			AllowMsgSchedules: true,
			// No direct reads: schedule.cancel reads the schedules of its
			// key, and only the leader is sure to hold every one stored.
			AllowDirect: false,
			// The rules commit the jobs of many events together.
			AllowAtomicPublish: cfg.batches(),
		},
		{
			Name:        DeadStream,
			Description: "jobs that failed for good, with their attempts, and events that a rule could not evaluate",
			Subjects:    []string{DeadSubjects},
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			AllowDirect: true,
		},
	}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		pu, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "<unparsable URL>"
		case pu.User != nil:
			pu.User = nil
			parts[i] = pu.String()
		}
	}
	return strings.Join(parts, ",")
}

// Waiting returns how many messages the durable consumer name of stream has
// still to finish: not delivered yet, or delivered and not acknowledged.
func Waiting(ctx context.Context, js jetstream.JetStream, stream, name string) (uint64, error) {
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return 0, err
	}
	info := c.CachedInfo() // just read from the server
	return info.NumPending + uint64(info.NumAckPending), nil
}
