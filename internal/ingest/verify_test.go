package ingest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/secret"
)

// The published test vectors of the providers and of HMAC itself. Each is
// checked both ways: the documented signature verifies, and signing the
// payload gives the documented signature.
func TestSignatureVectors(t *testing.T) {
	rfc := "what do ya want for nothing?" // RFC 2202 and RFC 4231, test case 2, key "Jefe"
	stripeBody := `{"id":"evt_1PqR2sT3uV4wX5yZ","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_3PqR2s"}}}`
	at := time.Unix(1732266000, 0)
	tests := []struct {
		name    string
		cfg     SourceConfig
		body    string
		headers map[string]string
	}{
		{
			// GitHub's own vector: "Testing the webhook payload validation" in
			// docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries.
			name:    "github",
			cfg:     SourceConfig{Kind: KindGeneric, Preset: "github", Secret: "It's a Secret to Everybody"},
			body:    "Hello, World!",
			headers: map[string]string{"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
		},
		{
			// Stripe documents the algorithm (docs.stripe.com/webhooks#verify-manually:
			// HMAC-SHA256 of "<t>.<body>" with the endpoint secret, hex, in
			// "Stripe-Signature: t=...,v1=...") but publishes no fixed vector;
			// this one was computed by that algorithm with Python's hmac module.
			name:    "stripe",
			cfg:     SourceConfig{Kind: KindGeneric, Preset: "stripe", Secret: "whsec_test_secret"},
			body:    stripeBody,
			headers: map[string]string{"Stripe-Signature": "t=1732266000,v1=db05775b2b2fbf800208532f9c9813c3c6411b458984a858b52fd2ea8b6ce572"},
		},
		{
			// Shopify documents the algorithm (shopify.dev, "Verify the webhook":
			// base64 of the HMAC-SHA256 of the raw body keyed with the app's
			// client secret) but publishes no fixed vector; this one was
			// computed by that algorithm with Python's hmac module.
			name:    "shopify",
			cfg:     SourceConfig{Kind: KindGeneric, Preset: "shopify", Secret: "shpss_test_secret"},
			body:    `{"id":820982911946154508,"email":"jon@example.com"}`,
			headers: map[string]string{"X-Shopify-Hmac-Sha256": "LnwdZPLBbdjkBwPD/lDL1/rYEGby/GHPtL1aAH6Dxjc="},
		},
		{
			name:    "hmac sha1 hex (RFC 2202)",
			cfg:     SourceConfig{Kind: KindGeneric, Secret: "Jefe", Signature: SignatureConfig{Header: "X-Sig", Algorithm: "sha1"}},
			body:    rfc,
			headers: map[string]string{"X-Sig": "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
		},
		{
			name:    "hmac sha256 hex with prefix (RFC 4231)",
			cfg:     SourceConfig{Kind: KindGeneric, Secret: "Jefe", Signature: SignatureConfig{Header: "X-Sig", Prefix: "sha256="}},
			body:    rfc,
			headers: map[string]string{"X-Sig": "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		},
		{
			name:    "hmac sha256 base64 (RFC 4231)",
			cfg:     SourceConfig{Kind: KindGeneric, Secret: "Jefe", Signature: SignatureConfig{Header: "X-Sig", Encoding: "base64"}},
			body:    rfc,
			headers: map[string]string{"X-Sig": "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="},
		},
		{
			name:    "hmac sha512 hex (RFC 4231)",
			cfg:     SourceConfig{Kind: KindGeneric, Secret: "Jefe", Signature: SignatureConfig{Header: "X-Sig", Algorithm: "sha512"}},
			body:    rfc,
			headers: map[string]string{"X-Sig": "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, err := newVerifiers("test", tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 1 {
				t.Fatalf("got %d verifiers, want 1", len(vs))
			}
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			if err := vs[0].verify(h, []byte(tt.body), at); err != nil {
				t.Errorf("documented signature does not verify: %v", err)
			}
			signed := http.Header{}
			vs[0].sign(signed, []byte(tt.body), at)
			for k, want := range tt.headers {
				if got := signed.Get(k); got != want {
					t.Errorf("signing: %s = %q, want %q", k, got, want)
				}
			}
			// One changed byte of the body must fail.
			if err := vs[0].verify(h, []byte(tt.body+" "), at); err == nil {
				t.Error("a changed body verifies")
			}
		})
	}
}

func TestVerifierRefusals(t *testing.T) {
	at := time.Unix(1732266000, 0)
	body := []byte(`{"a":1}`)
	sign := func(cfg SourceConfig, when time.Time) http.Header {
		vs, err := newVerifiers("test", cfg)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		for _, v := range vs {
			v.sign(h, body, when)
		}
		return h
	}
	stamped := SourceConfig{Kind: KindGeneric, Secret: "k", Signature: SignatureConfig{Header: "X-Sig", TimestampHeader: "X-Ts", Tolerance: time.Minute}}
	stripe := SourceConfig{Kind: KindGeneric, Preset: "stripe", Secret: "k"}
	tests := []struct {
		name string
		cfg  SourceConfig
		h    http.Header
		err  string // "" = verifies
	}{
		{"timestamp within tolerance", stamped, sign(stamped, at.Add(-50*time.Second)), ""},
		{"timestamp too old", stamped, sign(stamped, at.Add(-2*time.Minute)), "more than the tolerance"},
		{"timestamp in the future", stamped, sign(stamped, at.Add(2*time.Minute)), "more than the tolerance"},
		{"timestamp missing", stamped, http.Header{"X-Sig": {"00"}}, "missing X-Ts timestamp"},
		{"signature missing", stamped, http.Header{}, "missing X-Sig header"},
		{"signature not hex", stamped, http.Header{"X-Sig": {"zz"}, "X-Ts": {"1732266000"}}, "is not hex"},
		{"wrong secret", stamped, sign(SourceConfig{Kind: KindGeneric, Secret: "other", Signature: stamped.Signature}, at), "does not match"},
		{"prefix missing", SourceConfig{Kind: KindGeneric, Secret: "k", Signature: SignatureConfig{Header: "X-Sig", Prefix: "sha256="}},
			http.Header{"X-Sig": {"abcd"}}, `does not start with "sha256="`},
		{"stripe replayed", stripe, sign(stripe, at.Add(-10*time.Minute)), "more than the tolerance"},
		{"stripe without v1", stripe, http.Header{"Stripe-Signature": {"t=1732266000,v0=abc"}}, "has no v1 signature"},
		{"stripe second v1 matches", stripe, http.Header{"Stripe-Signature": {"t=1732266000,v1=00," + strings.TrimPrefix(strings.Split(sign(stripe, at).Get("Stripe-Signature"), ",")[1], "")}}, ""},
		{"bearer", SourceConfig{Kind: KindGeneric, Bearer: "tok"}, http.Header{"Authorization": {"Bearer tok"}}, ""},
		{"bearer wrong", SourceConfig{Kind: KindGeneric, Bearer: "tok"}, http.Header{"Authorization": {"Bearer nope"}}, "wrong bearer credential"},
		{"bearer missing", SourceConfig{Kind: KindGeneric, Bearer: "tok"}, http.Header{"Authorization": {"Basic eDp5"}}, "missing bearer credential"},
		{"basic", SourceConfig{Kind: KindGeneric, Basic: BasicConfig{Username: "u", Password: "p"}}, http.Header{"Authorization": {"Basic dTpw"}}, ""},
		{"basic wrong password", SourceConfig{Kind: KindGeneric, Basic: BasicConfig{Username: "u", Password: "p"}}, http.Header{"Authorization": {"Basic dTpx"}}, "wrong basic credential"},
		{"secret header", SourceConfig{Kind: KindComm100, SecretHeader: "X-Secret", Secret: "s3"}, http.Header{"X-Secret": {"s3"}}, ""},
		{"secret header wrong", SourceConfig{Kind: KindComm100, SecretHeader: "X-Secret", Secret: "s3"}, http.Header{"X-Secret": {"s4"}}, "wrong X-Secret header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, err := newVerifiers("test", tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got error
			for _, v := range vs {
				if got = v.verify(tt.h, body, at); got != nil {
					break
				}
			}
			switch {
			case tt.err == "" && got != nil:
				t.Errorf("got %v, want it to verify", got)
			case tt.err != "" && (got == nil || !strings.Contains(got.Error(), tt.err)):
				t.Errorf("got %v, want an error containing %q", got, tt.err)
			}
			if got != nil && strings.Contains(got.Error(), "tok") {
				t.Errorf("error %q shows the secret", got)
			}
		})
	}
}

func TestSourceConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  SourceConfig
		err  string
	}{
		{"no kind", SourceConfig{}, "sources.s.kind: required; one of: comm100, generic, cloudevents"},
		{"unknown kind", SourceConfig{Kind: "x"}, `sources.s.kind: unknown kind "x"`},
		{"bad cidr", SourceConfig{Kind: KindComm100, AllowIPs: []string{"10.0.0.0/33"}}, `sources.s.allow_ips: "10.0.0.0/33" is not a CIDR`},
		{"bad address", SourceConfig{Kind: KindComm100, AllowIPs: []string{"example.com"}}, `sources.s.allow_ips: "example.com" is not an IP address or a CIDR`},
		{"token with slash", SourceConfig{Kind: KindComm100, Token: "a/b"}, "sources.s.token: must not contain '/'"},
		{"preset on comm100", SourceConfig{Kind: KindComm100, Preset: "github"}, "sources.s.preset: not used by kind comm100"},
		{"type on cloudevents", SourceConfig{Kind: KindCloudEvents, Type: "body.x"}, "sources.s.type: not used by kind cloudevents"},
		{"unknown preset", SourceConfig{Kind: KindGeneric, Preset: "gitlab", Secret: "x"}, `sources.s.preset: unknown preset "gitlab"; one of: github, shopify, stripe`},
		{"preset without secret", SourceConfig{Kind: KindGeneric, Preset: "github"}, "sources.s.secret: required by preset github"},
		{"preset with signature", SourceConfig{Kind: KindGeneric, Preset: "github", Secret: "x", Signature: SignatureConfig{Header: "X"}}, "sources.s.signature: not with a preset"},
		{"signature without secret", SourceConfig{Kind: KindGeneric, Signature: SignatureConfig{Header: "X"}}, "sources.s.secret: required by signature"},
		{"signature without header", SourceConfig{Kind: KindGeneric, Secret: "x", Signature: SignatureConfig{Algorithm: "sha1"}}, "sources.s.signature.header: required"},
		{"bad algorithm", SourceConfig{Kind: KindGeneric, Secret: "x", Signature: SignatureConfig{Header: "X", Algorithm: "md5"}}, `sources.s.signature.algorithm: want sha1, sha256 or sha512, got "md5"`},
		{"bad encoding", SourceConfig{Kind: KindGeneric, Secret: "x", Signature: SignatureConfig{Header: "X", Encoding: "b32"}}, `sources.s.signature.encoding: want hex or base64, got "b32"`},
		{"unused secret", SourceConfig{Kind: KindGeneric, Secret: "x"}, "sources.s.secret: set but unused"},
		{"secret header without secret", SourceConfig{Kind: KindComm100, SecretHeader: "X"}, "sources.s.secret: required by secret_header"},
		{"basic without user", SourceConfig{Kind: KindGeneric, Basic: BasicConfig{Password: "p"}}, "sources.s.basic.username: required"},
		{"basic without password", SourceConfig{Kind: KindGeneric, Basic: BasicConfig{Username: "forms"}}, "sources.s.basic.password: required with basic.username (BOT_SOURCES__S__BASIC__PASSWORD)"},
		{"bad expression", SourceConfig{Kind: KindGeneric, Type: "body.("}, "sources.s.type: "},
		{"unknown variable", SourceConfig{Kind: KindGeneric, ID: "bodyy.id"}, "sources.s.id: unknown name bodyy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate("s")
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("got %v, want an error starting %q", err, tt.err)
			}
		})
	}
	if err := (SourceConfig{Kind: KindGeneric, Secret: secret.String("x"), Preset: "stripe"}).Validate("s"); err != nil {
		t.Errorf("a good config: %v", err)
	}
}
