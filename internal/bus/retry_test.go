package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// flakyJS answers CreateOrUpdateStream with the errors in fail, one per
// call, then succeeds. Only that method is implemented.
type flakyJS struct {
	jetstream.JetStream
	fail  []error
	calls int
}

func (f *flakyJS) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	f.calls++
	if f.calls <= len(f.fail) {
		err := f.fail[f.calls-1]
		if errors.Is(err, context.DeadlineExceeded) {
			<-ctx.Done() // the answer never comes
			return nil, ctx.Err()
		}
		return nil, err
	}
	return nil, nil
}

func TestCreateRetriesWhileTheClusterCannotAnswer(t *testing.T) {
	noPeers := &jetstream.APIError{Code: 500, ErrorCode: 10005, Description: "no suitable peers for placement"}
	refused := &jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}
	tests := []struct {
		name      string
		fail      []error
		wantCalls int
		wantErr   error
	}{
		{"answered at once", nil, 1, nil},
		{"unanswered, then answered", []error{context.DeadlineExceeded}, 2, nil},
		{"no peers yet, no responders, then answered", []error{noPeers, nats.ErrNoResponders}, 3, nil},
		{"refused: not tried again", []error{refused}, 1, refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flakyJS{fail: tt.fail}
			_, err := withCreateRetries(f).CreateOrUpdateStream(t.Context(), jetstream.StreamConfig{Name: "S"})
			if !errors.Is(err, tt.wantErr) || f.calls != tt.wantCalls {
				t.Errorf("got %v after %d calls, want %v after %d", err, f.calls, tt.wantErr, tt.wantCalls)
			}
		})
	}
}

func TestCreateRetriesEndWithTheCallersContext(t *testing.T) {
	f := &flakyJS{fail: []error{nats.ErrNoResponders, nats.ErrNoResponders, nats.ErrNoResponders, nats.ErrNoResponders, nats.ErrNoResponders}}
	ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
	defer cancel()
	_, err := withCreateRetries(f).CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "S"})
	if !errors.Is(err, nats.ErrNoResponders) || f.calls < 2 || f.calls > 4 {
		t.Errorf("got %v after %d calls, want the last error after a few tries within the deadline", err, f.calls)
	}
}
