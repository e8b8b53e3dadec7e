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
// lane's jobs out from among the other's must write a tombstone for each. A job finished
// above the floor (a job before it is still failing and waits for its next
// delivery) is deleted alone one pass later, a bounded number per pass; what
// is left over goes with the purge once the floor passes it. Schedules of
// delayed jobs, on other subjects, are never touched.
type sweeper struct {
	stream jetstream.Stream
	every  time.Duration
	// mayRemove, if set, says whether a pass may remove jobs now (see
	// Pool.MayRemove).
	mayRemove func() bool

	mu        sync.Mutex
	cur, prev []uint64 // sequences finished since the last pass, and in the pass before
	purged    uint64   // the floor of the last purge
	marks     []mark   // the stream's last sequence at the recent passes, oldest first
}

// errNoRoom is why a pass removed nothing: see Pool.MayRemove.
var errNoRoom = errors.New("the store's disk is nearly full")

// mark is the stream's last sequence as read at a time.
type mark struct {
	at  time.Time
	seq uint64
}

// idleLag is how long ago the stream's last sequence must have been read
// to count for a lane with nothing pending. A consumer learns of a message a
// moment after the message is stored and its PubAck sent: a lane that has
// nothing pending may not know yet of the last ones stored.
const idleLag = time.Second

const (
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		purge, err := s.sweep(ctx)
		if err != nil && ctx.Err() == nil {
			log.Debug("finished jobs not removed from the stream yet", "err", err)
		}
		t.Reset(sweepPause(s.every, purge))
	}
}

// sweepDuty bounds the share of the time the sweeper's purges take: it
// waits at least sweepDuty times as long as its last purge took. A purge
// holds the stream's store while it finds the jobs to remove, and finding
// them takes longer the more jobs the stream holds (about 30 to 50 ms with
// 400,000 waiting), time in which no job is stored or delivered.
const sweepDuty = 20

// sweepPause is the wait after a pass whose purge took took: every, or
// sweepDuty times took if longer.
func sweepPause(every, took time.Duration) time.Duration {
	return max(every, sweepDuty*took)
}

// sweep is one pass. It returns how long its purge took.
func (s *sweeper) sweep(ctx context.Context) (time.Duration, error) {
	if s.mayRemove != nil && !s.mayRemove() {
		return 0, errNoRoom
	}
	floor, err := s.floor(ctx)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	old := s.prev
	s.prev, s.cur = s.cur, old[:0:0]
	purged := s.purged
	s.mu.Unlock()
	var took time.Duration
	if floor > purged {
		start := time.Now()
		err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(job.RunSubjectPrefix+">"), jetstream.WithPurgeSequence(floor+1))
		took = time.Since(start)
		if err != nil {
			return took, err
		}
		s.mu.Lock()
		s.purged = max(s.purged, floor)
		s.mu.Unlock()
	}
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
// every lane is acknowledged or terminated. A lane with nothing pending or
// in hand holds nothing back: its floor is then the last sequence stored
// idleLag or more before its consumer was read, since the lane knew by
// then of every job stored before that, and one not finished would be
// pending or in hand. (Its own ack floor is only the last job it was given,
// however much of the other lane's came after.)
func (s *sweeper) floor(ctx context.Context) (uint64, error) {
	now := time.Now()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	last := info.State.LastSeq
	s.mu.Lock()
	s.marks = append(s.marks, mark{at: now, seq: last})
	for len(s.marks) > 1 && now.Sub(s.marks[1].at) >= idleLag {
		s.marks = s.marks[1:]
	}
	var settled uint64
	if m := s.marks[0]; now.Sub(m.at) >= idleLag {
		settled = m.seq
	}
	s.mu.Unlock()
	floor := last
	for _, name := range []string{bus.Comm100Consumer, bus.WorkerConsumer} {
		cons, err := s.stream.Consumer(ctx, name)
		if err != nil {
			return 0, err
		}
		ci := cons.CachedInfo() // just read from the server
		f := ci.AckFloor.Stream
		if ci.NumPending == 0 && ci.NumAckPending == 0 {
			f = max(f, settled)
		}
		floor = min(floor, f)
	}
	return floor, nil
}
