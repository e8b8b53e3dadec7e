package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures webhook ingestion.
type Config struct {
	// MaxBodyBytes is the largest body accepted; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// Sources by name. The name is the {source} of POST /hooks/{source}.
	Sources map[string]SourceConfig
	// RetryAfter is sent with 503 answers when the bus cannot take an event. Default 5s.
	RetryAfter time.Duration
}

// Handler answers POST /hooks/{source}[/{token}]: it verifies, normalizes and
// publishes the event, and says 202 only once the event is durable.
type Handler struct {
	cfg     Config
	sources map[string]*source
	pub     Publisher
	log     *slog.Logger
	now     func() time.Time

	requests *prometheus.CounterVec
}

// New validates the sources and returns the handler.
func New(cfg Config, pub Publisher, log *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	h := &Handler{cfg: cfg, sources: map[string]*source{}, pub: pub, log: log, now: time.Now}
	for _, name := range slices.Sorted(maps.Keys(cfg.Sources)) {
		s, err := newSource(name, cfg.Sources[name])
		if err != nil {
			return nil, err
		}
		h.sources[name] = s
	}
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bot_ingest_requests_total",
		Help: "Webhook requests by source and outcome (accepted, duplicate, or the refusal reason).",
	}, []string{"source", "outcome"})
	if reg != nil {
		if err := reg.Register(h.requests); err != nil {
			return nil, fmt.Errorf("register ingest metrics: %w", err)
		}
	}
	return h, nil
}

// Register mounts the webhook routes on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("/hooks/{source}", h)
	mux.Handle("/hooks/{source}/{token}", h)
}

// ServeHTTP handles one webhook delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("source")
	src, ok := h.sources[name]
	if !ok {
		h.refuse(w, "unknown", http.StatusNotFound, "unknown_source", fmt.Sprintf("unknown source %q", name))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, name, http.StatusMethodNotAllowed, "method", "use POST")
		return
	}
	if err := src.verify(r.PathValue("token")); err != nil {
		h.refuse(w, name, http.StatusUnauthorized, "verification", err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.refuse(w, name, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("body is larger than %d bytes", h.cfg.MaxBodyBytes))
			return
		}
		h.refuse(w, name, http.StatusBadRequest, "read", "could not read the body")
		return
	}
	ev, err := src.decode(name, r, body, h.now())
	if err != nil {
		h.refuse(w, name, http.StatusBadRequest, "malformed", err.Error())
		return
	}
	if err := ev.Validate(); err != nil {
		h.refuse(w, name, http.StatusBadRequest, "malformed", err.Error())
		return
	}
	dup, err := h.pub.Publish(r.Context(), ev)
	if err != nil {
		h.log.Warn("event not accepted: bus unavailable", "source", name, "event_id", ev.ID, "err", err)
		w.Header().Set("Retry-After", fmt.Sprint(int(h.cfg.RetryAfter.Seconds())))
		h.refuse(w, name, http.StatusServiceUnavailable, "bus_unavailable", "the event could not be stored; retry later")
		return
	}
	if dup {
		h.requests.WithLabelValues(name, "duplicate").Inc()
		h.log.Debug("duplicate event", "source", name, "event_id", ev.ID)
		writeJSON(w, http.StatusOK, map[string]any{"id": ev.ID, "duplicate": true})
		return
	}
	h.requests.WithLabelValues(name, "accepted").Inc()
	h.log.Info("event accepted", "source", name, "event_id", ev.ID, "type", ev.Type)
	writeJSON(w, http.StatusAccepted, map[string]any{"id": ev.ID})
}

// refuse answers with a JSON error, counts it, and logs it without the body.
func (h *Handler) refuse(w http.ResponseWriter, source string, status int, reason, msg string) {
	h.requests.WithLabelValues(source, reason).Inc()
	h.log.Info("webhook refused", "source", source, "status", status, "reason", reason, "err", msg)
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
