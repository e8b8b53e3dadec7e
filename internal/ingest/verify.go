package ingest

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// verifyError is a request that failed verification; it is answered 401. Its
// message never holds a secret or the body.
type verifyError struct{ msg string }

func (e *verifyError) Error() string { return e.msg }

func errVerify(format string, args ...any) error {
	return &verifyError{msg: fmt.Sprintf(format, args...)}
}

// A verifier proves that a request comes from the configured sender. verify
// sees the headers and the whole raw body; sign does what the sender does, so
// that `bot send` and tests make requests that verify.
type verifier interface {
	verify(h http.Header, body []byte, now time.Time) error
	sign(h http.Header, body []byte, now time.Time)
}

// newVerifiers builds the checks a source's configuration asks for, preset
// included; each of them must pass.
func newVerifiers(name string, cfg SourceConfig) ([]verifier, error) {
	var out []verifier
	key := []byte(cfg.Secret.Reveal())
	sig := cfg.Signature
	if cfg.Preset != "" {
		p, ok := presets[cfg.Preset]
		if !ok {
			return nil, fmt.Errorf("sources.%s.preset: unknown preset %q; one of: %s", name, cfg.Preset, presetNames())
		}
		if sig != (SignatureConfig{}) {
			return nil, fmt.Errorf("sources.%s.signature: not with a preset, which sets it", name)
		}
		if len(key) == 0 {
			return nil, fmt.Errorf("sources.%s.secret: required by preset %s", name, cfg.Preset)
		}
		v, err := p.verifier(key)
		if err != nil {
			return nil, fmt.Errorf("sources.%s.preset: %w", name, err)
		}
		out = append(out, v)
	}
	if sig.Header != "" {
		if len(key) == 0 {
			return nil, fmt.Errorf("sources.%s.secret: required by signature", name)
		}
		v, err := newHMACVerifier(sig, key)
		if err != nil {
			return nil, fmt.Errorf("sources.%s.signature.%w", name, err)
		}
		out = append(out, v)
	} else if sig != (SignatureConfig{}) {
		return nil, fmt.Errorf("sources.%s.signature.header: required to verify signatures", name)
	}
	if cfg.SecretHeader != "" {
		if len(key) == 0 {
			return nil, fmt.Errorf("sources.%s.secret: required by secret_header", name)
		}
		if cfg.Preset != "" || sig.Header != "" {
			return nil, fmt.Errorf("sources.%s.secret_header: not with a signature, which uses the secret as its key", name)
		}
		out = append(out, &headerSecret{header: cfg.SecretHeader, value: key})
	} else if len(key) > 0 && cfg.Preset == "" && sig.Header == "" {
		return nil, fmt.Errorf("sources.%s.secret: set but unused; add signature.header, preset or secret_header", name)
	}
	if cfg.Bearer != "" {
		out = append(out, &bearerToken{token: []byte(cfg.Bearer.Reveal())})
	}
	if cfg.Basic.Username != "" {
		if cfg.Basic.Password == "" {
			// An empty password would let anybody in who knows the user name:
			// most likely its environment variable is missing.
			return nil, fmt.Errorf("sources.%s.basic.password: required with basic.username (BOT_SOURCES__%s__BASIC__PASSWORD)", name, strings.ToUpper(name))
		}
		out = append(out, &basicAuth{user: []byte(cfg.Basic.Username), pass: []byte(cfg.Basic.Password.Reveal())})
	} else if cfg.Basic.Password != "" {
		return nil, fmt.Errorf("sources.%s.basic.username: required with basic.password", name)
	}
	return out, nil
}

// defaultTolerance is how far a signed timestamp may be from the bot's clock
// when signature.tolerance is not set.
const defaultTolerance = 5 * time.Minute

// hmacVerifier checks an HMAC of the body, or of "<timestamp>.<body>", sent
// in a header.
type hmacVerifier struct {
	header    string
	newHash   func() hash.Hash
	base64    bool
	prefix    string
	key       []byte
	tsHeader  string
	tolerance time.Duration
}

func newHMACVerifier(c SignatureConfig, key []byte) (*hmacVerifier, error) {
	v := &hmacVerifier{header: c.Header, prefix: c.Prefix, key: key, tsHeader: c.TimestampHeader, tolerance: c.Tolerance}
	switch c.Algorithm {
	case "sha256", "":
		v.newHash = sha256.New
	case "sha1":
		v.newHash = sha1.New
	case "sha512":
		v.newHash = sha512.New
	default:
		return nil, fmt.Errorf("algorithm: want sha1, sha256 or sha512, got %q", c.Algorithm)
	}
	switch c.Encoding {
	case "hex", "":
	case "base64":
		v.base64 = true
	default:
		return nil, fmt.Errorf("encoding: want hex or base64, got %q", c.Encoding)
	}
	if v.tolerance < 0 {
		return nil, fmt.Errorf("tolerance: want a positive duration, got %s", v.tolerance)
	}
	if v.tolerance == 0 {
		v.tolerance = defaultTolerance
	}
	return v, nil
}

func (v *hmacVerifier) mac(ts string, body []byte) []byte {
	m := hmac.New(v.newHash, v.key)
	if v.tsHeader != "" {
		m.Write([]byte(ts + "."))
	}
	m.Write(body)
	return m.Sum(nil)
}

func (v *hmacVerifier) verify(h http.Header, body []byte, now time.Time) error {
	got := h.Get(v.header)
	if got == "" {
		return errVerify("missing %s header", v.header)
	}
	enc, ok := strings.CutPrefix(got, v.prefix)
	if !ok {
		return errVerify("%s header does not start with %q", v.header, v.prefix)
	}
	sum, err := v.decode(enc)
	if err != nil {
		return errVerify("%s header is not %s", v.header, v.encoding())
	}
	ts := ""
	if v.tsHeader != "" {
		ts = h.Get(v.tsHeader)
		if err := checkTimestamp(v.tsHeader, ts, now, v.tolerance); err != nil {
			return err
		}
	}
	if !hmac.Equal(sum, v.mac(ts, body)) {
		return errVerify("%s signature does not match the body", v.header)
	}
	return nil
}

func (v *hmacVerifier) sign(h http.Header, body []byte, now time.Time) {
	ts := ""
	if v.tsHeader != "" {
		ts = strconv.FormatInt(now.Unix(), 10)
		h.Set(v.tsHeader, ts)
	}
	sum := v.mac(ts, body)
	enc := hex.EncodeToString(sum)
	if v.base64 {
		enc = base64.StdEncoding.EncodeToString(sum)
	}
	h.Set(v.header, v.prefix+enc)
}

func (v *hmacVerifier) encoding() string {
	if v.base64 {
		return "base64"
	}
	return "hex"
}

func (v *hmacVerifier) decode(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if v.base64 {
		return base64.StdEncoding.DecodeString(s)
	}
	return hex.DecodeString(strings.ToLower(s))
}

// checkTimestamp refuses a missing, malformed or stale signed timestamp.
func checkTimestamp(header, ts string, now time.Time, tolerance time.Duration) error {
	if ts == "" {
		return errVerify("missing %s timestamp", header)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errVerify("%s timestamp is not Unix seconds", header)
	}
	if d := now.Sub(time.Unix(sec, 0)).Abs(); d > tolerance {
		return errVerify("%s timestamp is %s away from now, more than the tolerance of %s", header, d.Round(time.Second), tolerance)
	}
	return nil
}

// headerSecret checks that a header carries the shared secret.
type headerSecret struct {
	header string
	value  []byte
}

func (v *headerSecret) verify(h http.Header, _ []byte, _ time.Time) error {
	got := h.Get(v.header)
	if got == "" {
		return errVerify("missing %s header", v.header)
	}
	if subtle.ConstantTimeCompare([]byte(got), v.value) != 1 {
		return errVerify("wrong %s header", v.header)
	}
	return nil
}

func (v *headerSecret) sign(h http.Header, _ []byte, _ time.Time) { h.Set(v.header, string(v.value)) }

// bearerToken checks "Authorization: Bearer <token>".
type bearerToken struct{ token []byte }

func (v *bearerToken) verify(h http.Header, _ []byte, _ time.Time) error {
	scheme, tok, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errVerify("missing bearer credential")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), v.token) != 1 {
		return errVerify("wrong bearer credential")
	}
	return nil
}

func (v *bearerToken) sign(h http.Header, _ []byte, _ time.Time) {
	h.Set("Authorization", "Bearer "+string(v.token))
}

// basicAuth checks HTTP Basic credentials.
type basicAuth struct{ user, pass []byte }

func (v *basicAuth) verify(h http.Header, _ []byte, _ time.Time) error {
	r := http.Request{Header: h}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return errVerify("missing basic credential")
	}
	// Compare both, always, so that timing does not tell which one was wrong.
	u := subtle.ConstantTimeCompare([]byte(user), v.user)
	p := subtle.ConstantTimeCompare([]byte(pass), v.pass)
	if u&p != 1 {
		return errVerify("wrong basic credential")
	}
	return nil
}

func (v *basicAuth) sign(h http.Header, _ []byte, _ time.Time) {
	r := http.Request{Header: h}
	r.SetBasicAuth(string(v.user), string(v.pass))
}
