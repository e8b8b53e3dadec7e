package actions

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/job"
)

// sweeper removes finished jobs from ACTIONS in the background, so that no
// job waits for a delete of its own. Every pass it reads the ack floors of
// the pool's consumers (every job of a lane at or below its floor is
// acknowledged or terminated) and purges the jobs up to the lower one in
// one request. One purge for both lanes, rather than one each: a purge that
// empties a block of the stream leaves no tombstones, and one that takes a
// lane's jobs out from among the other's must write a tombstone for each. A
// job finished above the floor (a job before it is still failing and waits
// for its next delivery) is deleted alone one pass later, a bounded number
// per pass; what is left over goes with the purge once the floor passes it.
// Schedules of delayed jobs, on other subjects, are never touched.
type sweeper struct {
	// stream is ACTIONS opened to read through its leader; its cached
	// config is never refreshed, so that it stays so (see floor).
	stream jetstream.Stream
	// js reads the stream's state afresh.
	js jetstream.JetStream
	// lanes are the pool's: their consumers' floors bound the purge.
	lanes [2]*lane
	every time.Duration
	// most is the most sequences one purge covers (sweepPurged, but in
	// tests).
	most uint64
	// mayRemove, if set, says whether a pass may remove jobs now (see
	// Pool.MayRemove).
	mayRemove func() bool

	mu        sync.Mutex
	cur, prev []uint64 // sequences finished since the last pass, and in the pass before
	purged    uint64   // the floor of the last purge
}

// errNoRoom is why a pass removed nothing: see Pool.MayRemove.
var errNoRoom = errors.New("the store's disk is nearly full")

const (
	// sweepPurged bounds the sequences one purge covers: about 1.5 MB of
	// tombstones at most, well inside the room MayRemove asks for.
	sweepPurged = 50_000
	// sweepTracked bounds the finished sequences remembered per pass.
	sweepTracked = 1 << 16
	// sweepDeletes bounds the deletes of one pass.
	sweepDeletes = 512
)

// finished notes a job's stream sequence once it is acknowledged or terminated.
func (s *sweeper) finished(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cur) < sweepTracked {
		s.cur = append(s.cur, seq)
	}
}

// run sweeps every s.every, or less often when passes are slow (see
// sweepPause), until ctx is done.
func (s *sweeper) run(ctx context.Context, log *slog.Logger) {
	t := time.NewTimer(s.every)
	defer t.Stop()
	waiting := false // for room on the disk
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		purge, err := s.sweep(ctx)
		switch full := errors.Is(err, errNoRoom); {
		case full && !waiting:
			log.Warn("finished jobs stay in ACTIONS while the store's disk is nearly full", "err", err)
		case !full && waiting:
			log.Info("the store's disk has room again; removing finished jobs")
		case err != nil && !full && ctx.Err() == nil:
			log.Debug("finished jobs not removed from the stream yet", "err", err)
		}
		waiting = errors.Is(err, errNoRoom)
		t.Reset(sweepPause(s.every, purge))
	}
}

// sweepDuty bounds the share of the time the sweeper's purges take: it
// waits at least sweepDuty times as long as its last purge took. A purge
// holds the stream's store while it finds the jobs to remove, and finding
// them takes longer the more jobs the stream holds (about 30 to 50 ms with
// 400,000 waiting), time in which no job is stored or delivered.
const sweepDuty = 20

// sweepPause is the wait after a pass whose reads and purge took took: every, or
// sweepDuty times took if longer.
func sweepPause(every, took time.Duration) time.Duration {
	return max(every, sweepDuty*took)
}

// sweep is one pass. It returns how long its reads and its purge took.
func (s *sweeper) sweep(ctx context.Context) (time.Duration, error) {
	if s.mayRemove != nil && !s.mayRemove() {
		return 0, errNoRoom
	}
	// The pass's reads count in its time too (see sweepPause): the last
	// job of a lane is found among every subject of the stream.
	start := time.Now()
	floor, first, err := s.floor(ctx)
	if err != nil {
		return time.Since(start), err
	}
	s.mu.Lock()
	old := s.prev
	s.prev, s.cur = s.cur, old[:0:0]
	// Everything at or below from is gone.
	from := s.purged
	if first > 0 {
		from = max(from, first-1)
	}
	s.mu.Unlock()
	if floor > from+s.most {
		// Skip what is gone already (after a start, or behind an old
		// schedule that holds the stream's first sequence back).
		if m, err := s.stream.GetMsg(ctx, from+1, jetstream.WithGetMsgSubject(job.RunSubjectPrefix+">")); err == nil {
			from = max(from, m.Sequence-1)
		}
	}
	// At most sweepPurged sequences a pass: a purge writes a tombstone for
	// each job it takes from a block that keeps others (see Pool.MayRemove),
	// and holds the stream while it runs.
	upTo := min(floor, from+s.most)
	if upTo > from {
		err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(job.RunSubjectPrefix+">"), jetstream.WithPurgeSequence(upTo+1))
		if err != nil {
			return time.Since(start), err
		}
		s.mu.Lock()
		s.purged = max(s.purged, upTo)
		s.mu.Unlock()
	}
	took := time.Since(start)
	n := 0
	for _, seq := range old {
		if seq <= floor {
			continue
		}
		if n++; n > sweepDeletes {
			break
		}
		if err := s.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return took, err
		}
	}
	return took, nil
}

// floor is the highest stream sequence at or below which every job of
// every lane is acknowledged or terminated, and first the stream's first
// sequence. A lane holds nothing back when its ack floor has reached the
// last job on its subjects, read after the stream's last sequence: every
// job of the lane stored by then is finished, and its floor is that last
// sequence. (Its own ack floor is only the last job it was given, however
// much of the other lane's came after.) The server answers "not found" for
// a read that failed too, so that answer counts only from a lane with
// nothing pending or in hand.
func (s *sweeper) floor(ctx context.Context) (floor, first uint64, err error) {
	// Read afresh through another handle: refreshing s.stream's cached
	// config would take up direct reads again, had an older replica turned
	// them on, and any replica, one that lags too, may answer those.
	info, err := s.js.Stream(ctx, bus.ActionsStream)
	if err != nil {
		return 0, 0, err
	}
	state := info.CachedInfo().State
	last := state.LastSeq
	floor = last
	for _, l := range s.lanes {
		cons, err := s.stream.Consumer(ctx, l.consumer)
		if err != nil {
			return 0, 0, err
		}
		ci := cons.CachedInfo() // just read from the server
		f := ci.AckFloor.Stream
		if f < last {
			// Read through the leader (the stream was opened so), which
			// holds every job stored.
			m, err := s.stream.GetLastMsgForSubject(ctx, l.filter)
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				if ci.NumPending == 0 && ci.NumAckPending == 0 {
					f = last
				}
			case err != nil:
				return 0, 0, err
			case m.Sequence <= f:
				f = last
			}
		}
		floor = min(floor, f)
	}
	return floor, state.FirstSeq, nil
}
