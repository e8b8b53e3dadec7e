package ingest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/secret"
)

// SourceConfig configures one webhook source, under "sources.<name>". The
// name is the {source} of POST /hooks/{source} and the first segment of the
// topics its events get ("<name>.<type>").
type SourceConfig struct {
	// Kind of the source: "comm100" (Comm100 live-chat, ticket-trigger,
	// chatbot and classic webhooks, told apart by their shape), "generic"
	// (any JSON webhook) or "cloudevents" (CloudEvents 1.0, structured or
	// binary HTTP mode). Required.
	Kind string `koanf:"kind"`
	// Token, when set, must be the last path segment: POST /hooks/<name>/<token>.
	// It is compared in constant time. Comm100 live-chat webhooks carry no
	// signature, so an unguessable token in the URL is how they are protected.
	// Default empty: no token.
	Token secret.String `koanf:"token"`
	// AllowIPs lists the addresses or CIDRs ("203.0.113.0/24", "2001:db8::/32",
	// "198.51.100.7") that may post to this source, matched against the
	// connection's remote address. Default empty: any address.
	AllowIPs []string `koanf:"allow_ips"`
	// Preset configures signature, type and id for a known sender, for kind
	// generic: "github" (X-Hub-Signature-256, type from X-GitHub-Event),
	// "stripe" (Stripe-Signature with a timestamp, type and id from the body)
	// or "shopify" (X-Shopify-Hmac-Sha256, type from X-Shopify-Topic). GitHub
	// and Shopify sign the body only, not their delivery-id headers, so their
	// event id is "<type>:<hash of the body>". Needs Secret. Default none.
	Preset string `koanf:"preset"`
	// Secret is the shared secret: the HMAC key of Signature or Preset, or the
	// value SecretHeader must carry.
	Secret secret.String `koanf:"secret"`
	// SecretHeader names a request header that must carry Secret exactly. For
	// kind comm100 it is checked on ticket-trigger, chatbot and classic
	// webhooks, which can send custom headers; live-chat webhooks cannot, so
	// they rely on Token and AllowIPs. Default empty: no such header.
	SecretHeader string `koanf:"secret_header"`
	// Signature configures HMAC verification of the body (kinds generic and
	// cloudevents). Enabled by setting its header.
	Signature SignatureConfig `koanf:"signature"`
	// Bearer, when set, must arrive as "Authorization: Bearer <bearer>".
	// Kinds generic and cloudevents. Default empty.
	Bearer secret.String `koanf:"bearer"`
	// Basic, when its username is set, must arrive as HTTP Basic credentials.
	// Kinds generic and cloudevents.
	Basic BasicConfig `koanf:"basic"`
	// Type is an expr expression over body and headers that gives the event
	// type, e.g. `body.topic` or `headers["X-Event"]`. Header names are
	// matched case-insensitively. Kind generic; default "webhook", or the
	// preset's.
	Type string `koanf:"type"`
	// ID is an expr expression that gives the event id, the key of
	// deduplication, e.g. `headers["X-Delivery-Id"]`. Kind generic; default
	// the preset's, or else a hash of the body.
	ID string `koanf:"id"`
	// Subject is an expr expression that gives the event subject, e.g.
	// `body.order.id`. Kind generic; default none.
	Subject string `koanf:"subject"`
}

// SignatureConfig configures HMAC verification of a webhook body.
type SignatureConfig struct {
	// Header carrying the signature, e.g. "X-Signature". Setting it enables
	// verification.
	Header string `koanf:"header"`
	// Algorithm of the HMAC: "sha1", "sha256" or "sha512". Default "sha256".
	Algorithm string `koanf:"algorithm"`
	// Encoding of the signature: "hex" or "base64". Default "hex".
	Encoding string `koanf:"encoding"`
	// Prefix before the encoded signature, e.g. "sha256=". Default none.
	Prefix string `koanf:"prefix"`
	// TimestampHeader, when set, names a header carrying the Unix time (in
	// seconds) of sending. The signed message is then "<timestamp>.<body>",
	// and requests outside Tolerance are refused, against replays. Default
	// none: the signed message is the body.
	TimestampHeader string `koanf:"timestamp_header"`
	// Tolerance is how far the timestamp may be from the bot's clock. Default 5m.
	Tolerance time.Duration `koanf:"tolerance"`
}

// BasicConfig is an HTTP Basic credential.
type BasicConfig struct {
	// Username expected. Setting it enables the check.
	Username string `koanf:"username"`
	// Password expected.
	Password secret.String `koanf:"password"`
}

// Kinds of sources.
const (
	KindComm100     = "comm100"
	KindGeneric     = "generic"
	KindCloudEvents = "cloudevents"
)

const kindList = KindComm100 + ", " + KindGeneric + ", " + KindCloudEvents

// decodeFunc turns a verified body into an event. An error that is a
// *verifyError is a failed verification (401); any other is a malformed body (400).
type decodeFunc func(r *http.Request, body []byte, received time.Time) (*event.Event, error)

// source is a configured, ready source.
type source struct {
	name  string
	kind  string
	token []byte
	allow []netip.Prefix
	// verifiers all must pass once the body is read.
	verifiers []verifier
	// mediaOK says whether a request's content type can be decoded.
	mediaOK func(h http.Header) error
	decode  decodeFunc
	// reply, when set, may give the answer to a stored event instead of
	// {"id": ...}: ok false keeps the usual answer.
	reply func(ev *event.Event, usual map[string]any) (status int, body any, ok bool)
}

// ReplayWindow is how long a captured request of this source can pass its
// signature check after it was first accepted: twice the tolerance of a
// signed timestamp (the timestamp may be ahead of the bot's clock by the
// tolerance as well as behind it), or 0 when nothing signed expires. A
// duplicate window at least this long turns every replay of an accepted
// request into a duplicate or a stale refusal, as long as the event id comes
// from what is signed.
func (c SourceConfig) ReplayWindow() time.Duration {
	var tolerance time.Duration
	switch {
	case c.Preset != "":
		tolerance = presets[c.Preset].tolerance
	case c.Signature.Header != "" && c.Signature.TimestampHeader != "":
		tolerance = c.Signature.Tolerance
		if tolerance <= 0 {
			tolerance = defaultTolerance
		}
	}
	return 2 * tolerance
}

// Validate checks the configuration of source name and compiles its
// expressions, as New does, so that mistakes show at config load.
func (c SourceConfig) Validate(name string) error {
	_, err := newSource(name, c)
	return err
}

func newSource(name string, cfg SourceConfig) (*source, error) {
	if err := event.ValidName(name, false); err != nil {
		return nil, fmt.Errorf("sources.%s: source name %w", name, err)
	}
	s := &source{name: name, kind: cfg.Kind, token: []byte(cfg.Token.Reveal()), mediaOK: jsonMedia}
	if strings.ContainsAny(cfg.Token.Reveal(), "/?#% ") {
		return nil, fmt.Errorf("sources.%s.token: must not contain '/', '?', '#', '%%' or spaces; it is a URL path segment", name)
	}
	for _, a := range cfg.AllowIPs {
		p, err := parsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("sources.%s.allow_ips: %w", name, err)
		}
		s.allow = append(s.allow, p)
	}
	// Options that only some kinds understand.
	only := func(key string, set bool, kinds ...string) error {
		if set && !slices.Contains(kinds, cfg.Kind) {
			return fmt.Errorf("sources.%s.%s: not used by kind %s (only by %s)", name, key, cfg.Kind, strings.Join(kinds, ", "))
		}
		return nil
	}
	for _, err := range []error{
		only("preset", cfg.Preset != "", KindGeneric),
		only("type", cfg.Type != "", KindGeneric),
		only("id", cfg.ID != "", KindGeneric),
		only("subject", cfg.Subject != "", KindGeneric),
		only("signature", cfg.Signature != (SignatureConfig{}), KindGeneric, KindCloudEvents),
		only("bearer", cfg.Bearer != "", KindGeneric, KindCloudEvents),
		only("basic", cfg.Basic != (BasicConfig{}), KindGeneric, KindCloudEvents),
	} {
		if err != nil {
			return nil, err
		}
	}
	auth, err := newVerifiers(name, cfg)
	if err != nil {
		return nil, err
	}
	switch cfg.Kind {
	case KindComm100:
		// The shared-secret header applies to some shapes only: the decoder checks it.
		s.decode = newComm100Decoder(name, auth)
		s.reply = comm100Reply
	case KindGeneric:
		s.verifiers = auth
		s.decode, err = newGenericDecoder(name, cfg)
		if err != nil {
			return nil, err
		}
	case KindCloudEvents:
		s.verifiers = auth
		s.mediaOK = cloudEventsMedia
		s.decode = decodeCloudEvent(name)
	case "":
		return nil, fmt.Errorf("sources.%s.kind: required; one of: %s", name, kindList)
	default:
		return nil, fmt.Errorf("sources.%s.kind: unknown kind %q; one of: %s", name, cfg.Kind, kindList)
	}
	return s, nil
}

// Unverified reports whether the source accepts requests from anybody.
func (s *source) unverified() bool {
	return len(s.token) == 0 && len(s.allow) == 0 && len(s.verifiers) == 0 && s.kind != KindComm100
}

// admit checks what a request proves before its body is read: the token in
// its URL and the address it comes from.
func (s *source) admit(r *http.Request) error {
	token := r.PathValue("token")
	if len(s.token) == 0 {
		if token != "" {
			return errVerify("this source takes no token in its URL")
		}
	} else if subtle.ConstantTimeCompare([]byte(token), s.token) != 1 {
		return errVerify("missing or wrong token in the URL")
	}
	if len(s.allow) > 0 {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			return errVerify("remote address %q is not an IP address", r.RemoteAddr)
		}
		addr := ap.Addr().Unmap()
		allowed := false
		for _, p := range s.allow {
			if p.Contains(addr) {
				allowed = true
				break
			}
		}
		if !allowed {
			return errVerify("address %s is not allowed to post to this source", addr)
		}
	}
	return nil
}

// parsePrefix reads a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 203.0.113.0/24", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or a CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
