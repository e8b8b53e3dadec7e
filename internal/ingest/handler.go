package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/event"
)

// Config configures webhook ingestion.
type Config struct {
	// MaxBodyBytes is the largest body accepted; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// Sources by name. The name is the {source} of POST /hooks/{source}.
	Sources map[string]SourceConfig
	// RetryAfter is sent with 503 answers when the bus cannot take an event. Default 5s.
	RetryAfter time.Duration
	// MaxInFlightBytes bounds the bodies of the webhooks being handled at
	// once (their declared size; MaxBodyBytes when they declare none): one
	// more is answered 503 with Retry-After, so that a flood of large or
	// slow requests cannot take the memory. Default 64 MiB, or MaxBodyBytes
	// if larger.
	MaxInFlightBytes int64
}

// minReserve is the least a webhook reserves of MaxInFlightBytes: what
// handling one takes besides its body.
const minReserve = 4 << 10

// busyRetryAfter is the Retry-After of a webhook refused while too many
// bytes are in flight: they pass within moments.
const busyRetryAfter = "1"

// Handler answers POST /hooks/{source}[/{token}]: it verifies, normalizes and
// publishes the event, and says 202 only once the event is durable.
type Handler struct {
	cfg     Config
	sources map[string]*source
	pub     Sink
	log     *slog.Logger
	now     func() time.Time

	requests *prometheus.CounterVec
	// inFlight is the bytes reserved by the webhooks being handled.
	inFlight atomic.Int64
}

// New validates the sources and returns the handler.
func New(cfg Config, pub Sink, log *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.MaxInFlightBytes <= 0 {
		cfg.MaxInFlightBytes = max(64<<20, cfg.MaxBodyBytes)
	}
	if cfg.MaxInFlightBytes < cfg.MaxBodyBytes {
		return nil, fmt.Errorf("http.max_in_flight_bytes (%d) is below http.max_body_bytes (%d): the largest webhook could never be taken", cfg.MaxInFlightBytes, cfg.MaxBodyBytes)
	}
	h := &Handler{cfg: cfg, sources: map[string]*source{}, pub: pub, log: log, now: time.Now}
	for _, name := range slices.Sorted(maps.Keys(cfg.Sources)) {
		s, err := newSource(name, cfg.Sources[name])
		if err != nil {
			return nil, err
		}
		h.sources[name] = s
		if s.unverified() {
			log.Warn("webhook source accepts requests from anybody; set a token, allow_ips, a signature or a credential", "source", name)
		} else if s.kind == KindComm100 && len(s.token) == 0 && len(s.allow) == 0 {
			log.Warn("Comm100 live-chat webhooks are unsigned and this source has no token or allow_ips: anybody can post them", "source", name)
		}
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

// SlowWebhook is how long a webhook may take to be answered before the
// handler marks it in an execution trace that is running (such as one of
// /debug/pprof/trace), under the log category SlowWebhookCategory with its
// time in microseconds ("12345µs"), so that the slow answers can be lined up
// with what the process did meanwhile (bot bench --trace).
const (
	SlowWebhook         = 10 * time.Millisecond
	SlowWebhookCategory = "slow webhook"
)

func markSlow(ctx context.Context, start time.Time) {
	if d := time.Since(start); d > SlowWebhook {
		MarkSlow(ctx, SlowWebhookCategory, d)
	}
}

// MarkSlow logs d under category in the running execution trace, as
// microseconds followed by "µs"; ParseSlowMark reads it back.
func MarkSlow(ctx context.Context, category string, d time.Duration) {
	trace.Log(ctx, category, strconv.FormatInt(d.Microseconds(), 10)+"µs")
}

// ParseSlowMark returns the time that MarkSlow logged as msg.
func ParseSlowMark(msg string) (time.Duration, error) {
	us, err := strconv.ParseInt(strings.TrimSuffix(msg, "µs"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("slow mark %q: %w", msg, err)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// ServeHTTP handles one webhook delivery. The checks run cheapest first and
// nothing is published unless all pass: source (404), method (405), token and
// address (401), content type (415), size (413, cut at the limit), bytes in
// flight (503), body signature (401), body (400); then the event is
// published (503 when the bus cannot take it).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if trace.IsEnabled() {
		defer markSlow(r.Context(), time.Now())
	}
	name := r.PathValue("source")
	src, ok := h.sources[name]
	if !ok {
		// Anybody can make up names, of any length: not as a label, not in
		// the answer, and in the log only a short, printable prefix.
		h.refuse(w, r, "unknown", http.StatusNotFound, "unknown_source", "unknown source", "name_prefix", namePrefix(name))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, r, name, http.StatusMethodNotAllowed, "method", "use POST")
		return
	}
	if err := src.admit(r); err != nil {
		h.refuse(w, r, name, http.StatusUnauthorized, "verification", err.Error())
		return
	}
	if err := src.mediaOK(r.Header); err != nil {
		h.refuse(w, r, name, http.StatusUnsupportedMediaType, "content_type", err.Error())
		return
	}
	tooLarge := fmt.Sprintf("body is larger than %d bytes", h.cfg.MaxBodyBytes)
	if r.ContentLength > h.cfg.MaxBodyBytes {
		h.refuse(w, r, name, http.StatusRequestEntityTooLarge, "too_large", tooLarge)
		return
	}
	need := r.ContentLength
	if need < 0 {
		need = h.cfg.MaxBodyBytes
	}
	need = max(need, minReserve)
	if h.inFlight.Add(need) > h.cfg.MaxInFlightBytes {
		h.inFlight.Add(-need)
		w.Header().Set("Retry-After", busyRetryAfter)
		h.refuse(w, r, name, http.StatusServiceUnavailable, "busy", "too many webhooks are being handled; retry in a moment")
		return
	}
	defer h.inFlight.Add(-need)
	body, err := readBody(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.refuse(w, r, name, http.StatusRequestEntityTooLarge, "too_large", tooLarge)
			return
		}
		var ne net.Error
		if r.Context().Err() != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			// Not a slow sender cut off by http.read_timeout: one that hung up.
			h.clientGone(name, "", err)
			return
		}
		h.refuse(w, r, name, http.StatusBadRequest, "read", "could not read the body")
		return
	}
	now := h.now()
	for _, v := range src.verifiers {
		if err := v.verify(r.Header, body, now); err != nil {
			h.refuse(w, r, name, http.StatusUnauthorized, "verification", err.Error())
			return
		}
	}
	ev, err := src.decode(r, body, now)
	if err != nil {
		var ve *verifyError
		if errors.As(err, &ve) {
			h.refuse(w, r, name, http.StatusUnauthorized, "verification", err.Error())
			return
		}
		h.refuse(w, r, name, http.StatusBadRequest, "malformed", err.Error())
		return
	}
	if err := ev.Validate(); err != nil {
		h.refuse(w, r, name, http.StatusBadRequest, "malformed", err.Error())
		return
	}
	dup, err := h.pub.Publish(r.Context(), ev)
	if err != nil && r.Context().Err() != nil {
		// The sender hung up while the event was being stored: not a bus
		// outage, and there is nobody left to answer.
		h.clientGone(name, ev.ID, err)
		return
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		// Retrying cannot help: the stored event would be larger than the bus takes.
		h.refuse(w, r, name, http.StatusRequestEntityTooLarge, "too_large", "the event is larger than the bus takes; send a smaller body")
		return
	}
	if err != nil {
		h.log.Warn("event not accepted: bus unavailable", "source", name, "event_id", ev.ID, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(h.cfg.RetryAfter.Seconds())))
		h.refuse(w, r, name, http.StatusServiceUnavailable, "bus_unavailable", "the event could not be stored; retry later")
		return
	}
	if dup {
		h.requests.WithLabelValues(name, "duplicate").Inc()
		h.log.Debug("duplicate event", "source", name, "event_id", ev.ID)
		answer(w, src, ev, http.StatusOK, map[string]any{"id": ev.ID, "duplicate": true})
		return
	}
	h.requests.WithLabelValues(name, "accepted").Inc()
	h.log.Debug("event accepted", "source", name, "event_id", ev.ID, "type", ev.Type)
	if src.reply == nil {
		// {"id": "<event id>"}, as writeJSON would write it, without its map and encoder.
		out := make([]byte, 0, len(ev.ID)+16)
		out = append(out, `{"id":`...)
		out, _ = event.AppendValue(out, ev.ID)
		out = append(out, "}\n"...)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(out)
		return
	}
	answer(w, src, ev, http.StatusAccepted, map[string]any{"id": ev.ID})
}

// clientGone counts and logs a request whose sender went away before it
// was answered. If the publish had already reached the bus the event may be
// stored; a retry of the sender is then answered as a duplicate.
func (h *Handler) clientGone(source, eventID string, err error) {
	h.log.Info("webhook not answered: the client hung up", "source", source, "event_id", eventID, "err", err)
	h.requests.WithLabelValues(source, "client_gone").Inc()
}

// answer writes the answer to a stored event: the source's own when its
// sender waits for one in a shape of its own (a bot engine waits for the
// bot's answer), else status and body.
func answer(w http.ResponseWriter, src *source, ev *event.Event, status int, body map[string]any) {
	if src.reply != nil {
		if st, b, ok := src.reply(ev, body); ok {
			writeJSON(w, st, b)
			return
		}
	}
	writeJSON(w, status, body)
}

// refuse answers with a JSON error, counts it, and logs it without the body.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, source string, status int, reason, msg string, attrs ...any) {
	h.requests.WithLabelValues(source, reason).Inc()
	h.log.Info("webhook refused", append([]any{"source", source, "status", status, "reason", reason, "err", msg, "remote", r.RemoteAddr}, attrs...)...)
	writeJSON(w, status, map[string]string{"error": msg})
}

// maxNamePrefix is how much of an unknown source name is logged.
const maxNamePrefix = 32

// namePrefix is the start of a source name as it may be logged: at most
// maxNamePrefix bytes, every byte that could not be a source name shown as
// '?', and "..." when it was cut.
func namePrefix(name string) string {
	cut := len(name) > maxNamePrefix
	if cut {
		name = name[:maxNamePrefix]
	}
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '?'
		}
	}
	if cut {
		return string(b) + "..."
	}
	return string(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bodyPrealloc bounds what readBody allocates before the body arrives.
const bodyPrealloc = 64 << 10

// readBody reads a request's body into one buffer of the size it announced
// (io.ReadAll would grow one from 512 bytes, copying as it goes), up to
// bodyPrealloc: a sender announcing a large body it does not send holds no
// more than that. A larger body, or one of unknown length, still reads whole.
func readBody(r io.Reader, announced int64) ([]byte, error) {
	if announced <= 0 {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(announced, bodyPrealloc)+bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}
