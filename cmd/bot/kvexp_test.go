package main

import (
	"sync"
	"testing"
	"time"
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/comm100bot/bot/internal/bus"
)

func TestKVCreateTiming(t *testing.T) {
	c := startNATSCluster(t, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			nc, _ := nats.Connect(c.urls())
			defer nc.Close()
			js, _ := jetstream.New(nc)
			step := func(what string, f func(ctx context.Context) error) {
				start := time.Now()
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				err := f(ctx)
				cancel()
				t.Logf("client %d %s: %s %v", i, what, time.Since(start), err)
			}
			step("setup", func(ctx context.Context) error { return bus.Setup(ctx, js, bus.Config{Replicas: 3}) })
			step("budget", func(ctx context.Context) error {
				_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "comm100_budget", History: 1, Storage: jetstream.FileStorage, Replicas: 3})
				return err
			})
			step("done", func(ctx context.Context) error {
				_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "jobs_done", TTL: 48 * time.Hour, Storage: jetstream.FileStorage, Replicas: 3})
				return err
			})
			step("attempts", func(ctx context.Context) error {
				_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "jobs_attempts", TTL: 25 * time.Hour, Storage: jetstream.FileStorage, Replicas: 3})
				return err
			})
		})
	}
	wg.Wait()
}
