package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// preset is how a well-known sender signs its webhooks and where it puts the
// event type and id. Users may still override type, id and subject.
type preset struct {
	verifier         func(key []byte) (verifier, error)
	typ, id, subject string
	// idFromBody makes the event id "<type>:<hash of the body>" when the
	// sender's own delivery id travels in a header that the signature does
	// not cover: a captured request replayed under a new delivery id is then
	// still the same event, and a duplicate.
	idFromBody bool
	// tolerance of the signed timestamp, when the signature has one.
	tolerance time.Duration
}

// stripeTolerance is how far Stripe's signed timestamp may be from the bot's
// clock, as Stripe's libraries default to.
const stripeTolerance = 5 * time.Minute

// presets by the name used in sources.<name>.preset.
var presets = map[string]preset{
	// https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
	// The HMAC covers the body only: X-GitHub-Event and X-GitHub-Delivery
	// are not signed, and there is no timestamp.
	"github": {
		verifier: func(key []byte) (verifier, error) {
			return newHMACVerifier(SignatureConfig{Header: "X-Hub-Signature-256", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256="}, key)
		},
		typ:        `headers["X-GitHub-Event"]`,
		idFromBody: true,
	},
	// https://docs.stripe.com/webhooks#verify-manually
	// The HMAC covers a timestamp and the body, which holds the event id.
	"stripe": {
		verifier: func(key []byte) (verifier, error) {
			return &stripeSignature{key: key, tolerance: stripeTolerance}, nil
		},
		typ:       `body.type`,
		id:        `body.id`,
		subject:   `body.data?.object?.id`,
		tolerance: stripeTolerance,
	},
	// https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook
	// The HMAC covers the body only: X-Shopify-Topic and
	// X-Shopify-Webhook-Id are not signed, and there is no timestamp.
	"shopify": {
		verifier: func(key []byte) (verifier, error) {
			return newHMACVerifier(SignatureConfig{Header: "X-Shopify-Hmac-Sha256", Algorithm: "sha256", Encoding: "base64"}, key)
		},
		// Topics look like "orders/create"; event types are dotted.
		typ:        `replace(headers["X-Shopify-Topic"], "/", ".")`,
		subject:    `body.id`,
		idFromBody: true,
	},
}

func presetNames() string { return strings.Join(slices.Sorted(maps.Keys(presets)), ", ") }

// stripeSignature checks Stripe's "Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]":
// an HMAC-SHA256 of "<t>.<body>" keyed with the endpoint secret, any v1 of
// which may match (Stripe sends several while a secret is being rolled), and
// a timestamp within the tolerance.
type stripeSignature struct {
	key       []byte
	tolerance time.Duration
}

const stripeHeader = "Stripe-Signature"

func (v *stripeSignature) mac(ts string, body []byte) []byte {
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return m.Sum(nil)
}

func (v *stripeSignature) verify(h http.Header, body []byte, now time.Time) error {
	raw := h.Get(stripeHeader)
	if raw == "" {
		return errVerify("missing %s header", stripeHeader)
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(raw, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = val
		case "v1":
			if b, err := hex.DecodeString(val); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if len(sigs) == 0 {
		return errVerify("%s header has no v1 signature", stripeHeader)
	}
	if err := checkTimestamp(stripeHeader, ts, now, v.tolerance); err != nil {
		return err
	}
	want := v.mac(ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return errVerify("%s signature does not match the body", stripeHeader)
}

func (v *stripeSignature) sign(h http.Header, body []byte, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	h.Set(stripeHeader, fmt.Sprintf("t=%s,v1=%s", ts, hex.EncodeToString(v.mac(ts, body))))
}
