package main

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

// replicaProblems lists every stream (the key-value buckets included) and
// every consumer on the bus, and says which are not kept on want servers:
// their configured replicas and, in a cluster, the peers that hold them.
// A consumer configured with 0 replicas follows its stream. Ephemeral
// consumers (ingest's reader of event ids) are left out: they hold nothing
// that is not made again from the stream when they are lost.
func replicaProblems(ctx context.Context, js jetstream.JetStream, want int) (names []string, problems []string, err error) {
	clustered := func(ci *jetstream.ClusterInfo) (int, bool) {
		if ci == nil || ci.Leader == "" {
			return 0, false
		}
		return 1 + len(ci.Replicas), true
	}
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		name := info.Config.Name
		names = append(names, name)
		if info.Config.Replicas != want {
			problems = append(problems, fmt.Sprintf("stream %s: %d replicas configured, want %d", name, info.Config.Replicas, want))
		}
		if n, ok := clustered(info.Cluster); ok && n != want {
			problems = append(problems, fmt.Sprintf("stream %s: held by %d servers, want %d", name, n, want))
		}
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, nil, fmt.Errorf("stream %s: %w", name, err)
		}
		consumers := s.ListConsumers(ctx)
		for ci := range consumers.Info() {
			if ci.Config.Durable == "" {
				continue
			}
			cname := name + "/" + ci.Name
			names = append(names, cname)
			if r := ci.Config.Replicas; r != 0 && r != want {
				problems = append(problems, fmt.Sprintf("consumer %s: %d replicas configured, want %d", cname, r, want))
			}
			if n, ok := clustered(ci.Cluster); ok && n != want {
				problems = append(problems, fmt.Sprintf("consumer %s: held by %d servers, want %d", cname, n, want))
			}
		}
		if err := consumers.Err(); err != nil {
			return nil, nil, fmt.Errorf("consumers of %s: %w", name, err)
		}
	}
	if err := streams.Err(); err != nil {
		return nil, nil, fmt.Errorf("list streams: %w", err)
	}
	slices.Sort(names)
	return names, problems, nil
}

// TestEverythingTheBotCreatesFollowsReplicas starts the whole bot with
// Comm100 credentials, so that every part creates what it needs, and checks
// every stream, bucket and consumer on the bus against nats.replicas. The
// cluster test checks the same with 3 replicas on 3 servers.
func TestEverythingTheBotCreatesFollowsReplicas(t *testing.T) {
	_, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, simArgs...)
	waitIdle(t, a)
	names, problems, err := replicaProblems(t.Context(), a.bus.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	// What the bot creates; a new stream, bucket or consumer is checked
	// without being named here, and this list says it was seen.
	for _, want := range []string{
		bus.EventsStream, bus.EventsStream + "/" + bus.RulesConsumer,
		bus.ActionsStream, bus.ActionsStream + "/" + bus.WorkerConsumer, bus.ActionsStream + "/" + bus.Comm100Consumer,
		bus.DeadStream, "KV_" + bus.DoneBucket, "KV_" + bus.AttemptsBucket, "KV_" + actions.BudgetBucket,
	} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not found on the bus; found %v", want, names)
		}
	}
}
