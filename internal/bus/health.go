package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StoreError says why the bus cannot store events now.
type StoreError struct {
	// Cause, in the server's words.
	Cause string
	// restart is true when only starting JetStream again clears the cause
	// once the disk takes writes: the server keeps a stream's write error,
	// and a JetStream it disabled, until then.
	restart bool
	// full is true when the store reached its limit.
	full bool
}

func (e *StoreError) Error() string { return "events cannot be stored: " + e.Cause }

// Ready reports whether events can be stored now: nil, or what stops them.
// It is what GET /readyz answers. For the embedded server it asks the server
// itself: a stream that hit a write error (a full or read-only disk), a
// JetStream the server disabled, a store at its limit. For an external
// server it asks JetStream for the account, which fails when JetStream is
// away, and compares the account's store with its limit; the health of an
// external server's disks is that server's to report.
func (b *Bus) Ready(ctx context.Context) error {
	if !b.Connected() {
		return errors.New("NATS is not connected")
	}
	if err := b.stuck.Load(); err != nil {
		return *err
	}
	if srv := b.srv.Load(); srv != nil {
		// The server answers at once unless a stream's lock is held; one
		// held for good must not hold /readyz too (see Run). The check
		// left waiting then waits for good, and every call until Run has
		// found the server stuck waits for that same check.
		c := b.probing(srv)
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return fmt.Errorf("the embedded NATS server does not answer: %w", ctx.Err())
		}
	}
	info, err := b.JS.AccountInfo(ctx)
	if err != nil {
		return fmt.Errorf("JetStream does not answer: %w", err)
	}
	if max := info.Limits.MaxStore; max > 0 && int64(info.Store) >= max {
		return &StoreError{Cause: fmt.Sprintf("the account's JetStream store is full (%d of %d bytes)", info.Store, max), full: true}
	}
	return nil
}

// probing returns the check of srv under way, or starts one.
func (b *Bus) probing(srv *server.Server) *probe {
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	if b.probe != nil {
		return b.probe
	}
	c := &probe{done: make(chan struct{})}
	b.probe = c
	go func() {
		c.err = b.checkStore(srv)
		b.probeMu.Lock()
		b.probe = nil
		b.probeMu.Unlock()
		close(c.done)
	}()
	return c
}

// storeErr is what keeps the embedded server from storing, nil if nothing.
func storeErr(srv *server.Server) error {
	// Only what stops writes counts: the server's health also reports
	// streams it has not finished creating, which a start of the pool (its
	// buckets) would turn into a moment of "not ready".
	h := srv.Healthz(&server.HealthzOptions{Details: true})
	for _, e := range h.Errors {
		switch {
		case e.Type == server.HealthzErrorJetStream,
			e.Type == server.HealthzErrorStream && strings.Contains(e.Error, "write error"):
			return &StoreError{Cause: e.Error, restart: true}
		}
	}
	jsz, err := srv.Jsz(&server.JSzOptions{})
	if err != nil {
		return &StoreError{Cause: err.Error(), restart: true}
	}
	if jsz.Disabled {
		return &StoreError{Cause: "JetStream is disabled", restart: true}
	}
	if max := jsz.Config.MaxStore; max > 0 && int64(jsz.Store) > max {
		return &StoreError{Cause: fmt.Sprintf("the JetStream store is at its limit (%d of %d bytes)", jsz.Store, max), full: true}
	}
	return nil
}

// Run watches the embedded server until ctx is done, so that storage
// errors clear by themselves once their cause is gone. The server keeps a
// stream's write error (a full or read-only disk) until JetStream starts
// again, and sizes its store, unless nats.max_store says otherwise, from the
// disk space free when it started; so when the store directory takes writes
// again, or the disk has room for more than the old limit, Run starts
// JetStream again, which reloads the streams from disk. Each change of state
// is logged once. Without an embedded server Run only waits for ctx.
//
// A check that the server has not answered within stuckAfter means a lock
// of its store is held for good (as in nats-server 2.15, when the first
// write to fail on a full disk is that of a purge's tombstones: the purge
// waits for a lock it holds). Nothing is stored from then on, and only a new
// process mends it: Run returns ErrStuck, /healthz and /readyz answer 503,
// and Close leaves the server as it is, so that the bot exits and its
// service manager starts it again, on the files it left.
func (b *Bus) Run(ctx context.Context) error {
	if b.srv.Load() == nil {
		<-ctx.Done()
		return nil
	}
	w := watcher{bus: b, every: time.Second, maxBackoff: 30 * time.Second}
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	checked := make(chan struct{}, 1)
	var since time.Time // the start of the check under way; zero if none
	for {
		select {
		case <-ctx.Done():
			if since.IsZero() {
				return nil
			}
			// Let the check, or a new start of JetStream, finish before
			// Close shuts the server down, but within a stop's time.
			select {
			case <-checked:
				return nil
			case <-time.After(min(b.stuckLimit()-time.Since(since), b.stopWait)):
				return b.markStuck(time.Since(since))
			}
		case <-checked:
			since = time.Time{}
		case now := <-tick.C:
			if since.IsZero() {
				since = now
				go func() {
					w.check(now)
					checked <- struct{}{}
				}()
				continue
			}
			if wait := now.Sub(since); wait >= b.stuckLimit() {
				return b.markStuck(wait)
			}
		}
	}
}

// stuckLimit is how long the check under way may take: stuckAfter, or
// restartStuckAfter while it starts JetStream again, which reloads every
// stream from disk.
func (b *Bus) stuckLimit() time.Duration {
	if b.restarting.Load() {
		return max(b.stuckAfter, restartStuckAfter)
	}
	return b.stuckAfter
}

// markStuck records that the server has not answered for wait, and returns
// the error that says so.
func (b *Bus) markStuck(wait time.Duration) error {
	err := fmt.Errorf("%w: a health check has waited %s for it", ErrStuck, wait.Round(time.Second))
	b.stuck.Store(&err)
	b.log.Error("the embedded NATS server is stuck: nothing can be stored; stopping, so that the service manager starts the bot again (what was stored is on disk)", "err", err)
	return err
}

// ErrStuck is what Run returns when the embedded server no longer answers.
var ErrStuck = errors.New("the embedded NATS server does not answer")

// stuckAfter is how long a health check of the embedded server may wait for
// it: the check takes milliseconds. A new start of JetStream (see watcher),
// which reloads the streams, may take restartStuckAfter.
const (
	stuckAfter        = time.Minute
	restartStuckAfter = 10 * time.Minute
)

// stopWait is how long a stop waits for a check still under way (a new
// start of JetStream): within the 30s that Kubernetes gives a pod to stop.
const stopWait = 15 * time.Second

// watcher is the state of Run between checks.
type watcher struct {
	bus        *Bus
	every      time.Duration
	maxBackoff time.Duration

	down      time.Time // when storing stopped; zero while it works
	cause     string
	nextStart time.Time     // no new start of JetStream before then
	backoff   time.Duration // between starts that did not help
	probeSaid bool          // the probe's failure was logged for this outage
}

func (w *watcher) check(now time.Time) {
	b := w.bus
	err := b.checkStore(b.srv.Load())
	var se *StoreError
	if !errors.As(err, &se) {
		if !w.down.IsZero() {
			b.log.Info("JetStream stores events again", "down_for", now.Sub(w.down).Round(time.Second).String())
		}
		*w = watcher{bus: b, every: w.every, maxBackoff: w.maxBackoff}
		return
	}
	if w.down.IsZero() {
		w.down, w.backoff = now, 2*w.every
		b.log.Error("JetStream cannot store events: webhooks are answered 503 and /readyz reports not ready until it can", "err", se.Cause)
	} else if se.Cause != w.cause {
		b.log.Warn("JetStream still cannot store events", "err", se.Cause)
	}
	w.cause = se.Cause
	if now.Before(w.nextStart) {
		return
	}
	switch {
	case se.restart:
		// Cheap enough to try at every check: a small write.
		if err := probeWrite(b.storeDir); err != nil {
			if !w.probeSaid {
				b.log.Warn("the store directory does not take writes yet; JetStream starts again once it does", "err", err)
				w.probeSaid = true
			}
			return
		}
		b.log.Warn("the store directory takes writes again; starting JetStream again to clear the error")
	case se.full && !b.storeLimitSet:
		// The limit was three quarters of the disk space free at start: if
		// the disk has room now for more than is stored, a new start grows it.
		free, ok := diskFree(b.storeDir)
		jsz, err := b.srv.Load().Jsz(&server.JSzOptions{})
		if !ok || err != nil || free/4*3 <= int64(jsz.Store)+minRoom {
			return
		}
		b.log.Warn("the disk has room again; starting JetStream again to grow the store's limit", "free_bytes", free)
	default:
		return // a limit set by nats.max_store: old events must expire first
	}
	// If the start does not clear the cause (the disk fills again at once),
	// the next one waits longer.
	w.nextStart = now.Add(w.backoff)
	w.backoff = min(2*w.backoff, w.maxBackoff)
	b.restarting.Store(true)
	defer b.restarting.Store(false)
	if err := b.restartJetStream(); err != nil {
		b.log.Error("JetStream could not be started again; will retry", "err", err)
	}
}

// minRoom is the room a grown store limit must leave above what is stored
// before JetStream is started again for it.
const minRoom = 1 << 20

// restartJetStream starts the embedded server again, on the same port and
// from the same files: JetStream reloads its streams, clears their write
// errors and sizes its store again. (Stopping and enabling JetStream inside
// the running server would race with the requests it is serving.) Clients
// reconnect by themselves, and the consumers pull again at once. Requests
// fail meanwhile, as while NATS is away.
func (b *Bus) restartJetStream() error {
	old := b.srv.Load()
	old.Shutdown()
	old.WaitForShutdown()
	srv, err := newEmbedded(b.srvOpts, b.log, old.ClientURL(), b.storeDir)
	if err != nil {
		return fmt.Errorf("start the embedded server again: %w", err)
	}
	b.srv.Store(srv)
	return nil
}

// probeWrite writes and syncs a small file in dir, then removes it: whether
// the disk takes writes again.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write(make([]byte, 64<<10))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
