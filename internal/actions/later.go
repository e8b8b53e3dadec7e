package actions

import (
	"context"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/job"
)

// laterSubjectPrefix is where the jobs that left a lane wait for their
// target's turn (see ScheduleSubjectPrefix).
const laterSubjectPrefix = ScheduleSubjectPrefix + "later."

// deliveriesHeader carries, on a job stored again for later, how many times
// it had been delivered before the delivery in which it left (that one ran
// nothing): the copy that fires starts counting again, and the worker adds
// these (see deliveries), so that the job's attempts are read and its
// retries go on growing.
const deliveriesHeader = "Bot-Deliveries"

// deliveries returns how many times the job in msg has been delivered,
// those of the copies it was stored again from included.
func deliveries(msg jetstream.Msg) uint64 {
	var n uint64 = 1
	if meta, err := msg.Metadata(); err == nil {
		n = meta.NumDelivered
	}
	if h := msg.Headers().Get(deliveriesHeader); h != "" {
		if before, err := strconv.ParseUint(h, 10, 32); err == nil {
			n += before
		}
	}
	return n
}

// reschedule stores t's job again, as it was stored, in a schedule that
// fires onto its run subject at t.backAt, then acknowledges the copy in
// hand and tells lane l that t has left (see lane.admit). It does not wait:
// t keeps its slot or its place in the park room, and progress is reported
// on it, until the schedule is stored. A schedule of the job already
// waiting (a second delivery of it left too) is as good as this one. If it
// cannot be stored, the job is handed back to come again after a
// redelivery's delay, and parks or leaves again then.
//
// The schedule carries the job's body unchanged, so its due time, from
// which its retries are counted, stays; no message id, since the stream
// remembers the first copy's and would drop this one as its duplicate;
// and the deliveries before this one (deliveriesHeader).
func (p *Pool) reschedule(l *lane, t task) {
	p.leaving.Go(func() {
		defer l.left(t)
		defer p.held.remove(t.msg)
		msg := &nats.Msg{Subject: laterSubjectPrefix + job.Token(t.job.ID), Data: t.msg.Data(), Header: nats.Header{}}
		setSchedule(msg.Header, t.backAt, t.msg.Subject())
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		if n := deliveries(t.msg) - 1; n > 0 {
			msg.Header.Set(deliveriesHeader, strconv.FormatUint(n, 10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.ackWait)
		_, err := p.js.PublishMsg(ctx, msg)
		cancel()
		if err != nil && !AlreadyStored(err) {
			p.log.Warn("job cannot wait for its host's turn in ACTIONS; handed back", "job", t.job.ID, "action", t.job.Action, "err", err)
			_ = t.msg.NakWithDelay(p.policy.Redelivery.Delay(1))
			return
		}
		p.metrics.jobs.WithLabelValues(t.job.Action, "rescheduled").Inc()
		p.finish(t.msg, t.msg.Ack())
	})
}
