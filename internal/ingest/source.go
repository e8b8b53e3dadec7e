package ingest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/secret"
)

// SourceConfig configures one webhook source, under "sources.<name>".
type SourceConfig struct {
	// Kind of the source: "comm100".
	Kind string `koanf:"kind"`
	// Token, when set, must be the last path segment: POST /hooks/<name>/<token>.
	// Comm100 live-chat webhooks carry no signature, so an unguessable token
	// in the URL is how they are protected.
	Token secret.String `koanf:"token"`
}

// Kinds of sources.
const (
	KindComm100 = "comm100"
)

// source is a configured, ready source.
type source struct {
	name string
	cfg  SourceConfig
	// decode turns a verified body into an event.
	decode func(name string, r *http.Request, body []byte, received time.Time) (*event.Event, error)
}

func newSource(name string, cfg SourceConfig) (*source, error) {
	if err := event.ValidName(name, false); err != nil {
		return nil, fmt.Errorf("sources.%s: source name %w", name, err)
	}
	s := &source{name: name, cfg: cfg}
	switch cfg.Kind {
	case KindComm100:
		s.decode = func(name string, _ *http.Request, body []byte, received time.Time) (*event.Event, error) {
			return normalizeComm100(name, body, received)
		}
	case "":
		return nil, fmt.Errorf("sources.%s.kind: required; one of: %s", name, KindComm100)
	default:
		return nil, fmt.Errorf("sources.%s.kind: unknown kind %q; one of: %s", name, cfg.Kind, KindComm100)
	}
	return s, nil
}

// verify checks what the request proves about its sender.
func (s *source) verify(token string) error {
	want := s.cfg.Token.Reveal()
	if want == "" {
		if token != "" {
			return errVerify("this source takes no token in its URL")
		}
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
		return errVerify("missing or wrong token in the URL")
	}
	return nil
}

type errVerify string

func (e errVerify) Error() string { return string(e) }
