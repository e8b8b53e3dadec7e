package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/comm100bot/bot/internal/event"
)

// decodeJSON decodes a JSON object keeping numbers exact.
func decodeJSON(body []byte) (map[string]any, error) {
	v, err := decodeAnyJSON(body)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("body is not a JSON object")
	}
	return m, nil
}

// decodeAnyJSON decodes one JSON value keeping numbers exact (json.Number),
// within the limits the rules consumer decodes stored events with.
func decodeAnyJSON(body []byte) (any, error) {
	v, err := event.ParseJSON(body)
	switch {
	case errors.Is(err, event.ErrTooDeep):
		return nil, fmt.Errorf("body is %w", err)
	case errors.Is(err, event.ErrTrailingData):
		return nil, fmt.Errorf("body has data after the JSON value")
	case err != nil:
		return nil, fmt.Errorf("body is not JSON: %w", err)
	}
	return v, nil
}

// plainValue turns the json.Numbers of a decoded value into int64 or
// float64, in place, and changes nothing else.
func plainValue(v any) any { return event.Numbers(v) }

func number(n json.Number) any { return event.Number(n) }

// jsonMedia accepts the content types a JSON body comes with: none,
// application/json, text/json, text/plain and any "+json" type.
func jsonMedia(h http.Header) error {
	mt := mediaType(h)
	switch {
	case mt == "", mt == "application/json", mt == "text/json", mt == "text/plain", strings.HasSuffix(mt, "+json"):
		return nil
	}
	return fmt.Errorf("content type %s is not JSON; send Content-Type: application/json", event.Excerpt(h.Get("Content-Type")))
}

// parseMSDate turns "/Date(1584415749307)/" into a UTC time: milliseconds
// since 1970, optionally followed by a UTC offset that does not change the
// instant ("/Date(1584415749307+0800)/"), as ^/Date\((-?\d+)([+-]\d{4})?\)/$
// would read it.
func parseMSDate(s string) (time.Time, bool) {
	inner, ok := strings.CutPrefix(s, "/Date(")
	if !ok {
		return time.Time{}, false // most strings
	}
	if inner, ok = strings.CutSuffix(inner, ")/"); !ok {
		return time.Time{}, false
	}
	ms := inner
	if n := len(inner); n >= 6 && (inner[n-5] == '+' || inner[n-5] == '-') && allDigits(inner[n-4:]) {
		ms = inner[:n-5]
	}
	if !allDigits(strings.TrimPrefix(ms, "-")) {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n).UTC(), true
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// normalizeValue rewrites a decoded JSON value in place for rules: Microsoft
// JSON dates become RFC 3339, numbers become int64 or float64, ids become
// strings, and {name, value} lists under a custom* key become maps.
func normalizeValue(key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeValue(k, e)
		}
		return x
	case []any:
		// Elements of an id list ("tagIds") are ids too.
		elemKey := ""
		if isIDKey(key) {
			elemKey = "id"
		}
		for i, e := range x {
			x[i] = normalizeValue(elemKey, e)
		}
		// custom_fields, custom_variables, custom_variable (the chat's), and
		// the chatbot's customFields and customVariables.
		if strings.HasPrefix(strings.ToLower(key), "custom") {
			if m, ok := nameValueMap(x); ok {
				return m
			}
		}
		return x
	case json.Number:
		if isIDKey(key) {
			return x.String()
		}
		return number(x)
	case string:
		if t, ok := parseMSDate(x); ok {
			return t.Format(time.RFC3339Nano)
		}
		return x
	default:
		return v
	}
}

func isIDKey(k string) bool {
	return k == "id" || strings.HasSuffix(k, "_id") || strings.HasSuffix(k, "Id") ||
		strings.HasSuffix(k, "_ids") || strings.HasSuffix(k, "Ids")
}

// nameValueMap turns [{"name":"VIP","value":"yes"}, ...] into {"VIP":"yes"}.
func nameValueMap(list []any) (map[string]any, bool) {
	out := make(map[string]any, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		name, ok := m["name"].(string)
		if !ok {
			return nil, false
		}
		out[name] = m["value"]
	}
	return out, true
}

// bodyHash is a short, stable id for a body that carries none of its own.
func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:12])
}

// parseSeconds reads Comm100 durations such as "6s", "1m 5s" or "1h2m3s".
func parseSeconds(s string) (int64, bool) {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return int64(d / time.Second), true
}

// camelKeys rewrites the keys of Comm100's PascalCase payloads to camelCase
// ("TicketInfo" → "ticketInfo", "SiteId" → "siteId", "ID" → "id"), in place
// and recursively, except inside custom fields, whose keys are user data.
// Should two keys meet, the one already in camelCase wins and the other
// keeps its name.
func camelKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			e := x[k]
			c := camelCase(k)
			if !strings.EqualFold(c, "customFields") {
				e = camelKeys(e)
			}
			if c == k {
				x[k] = e
				continue
			}
			if _, taken := x[c]; taken {
				x[k] = e
				continue
			}
			delete(x, k)
			x[c] = e
		}
	case []any:
		for i, e := range x {
			x[i] = camelKeys(e)
		}
	}
	return v
}

// camelCase lowers the leading capitals of a name, keeping the last one of a
// run that starts a word: "URLPath" → "urlPath", "Id" → "id".
func camelCase(s string) string {
	r := []rune(s)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n == 0 {
		return s
	}
	if n > 1 && n < len(r) && unicode.IsLower(r[n]) {
		n-- // "URLPath": the P starts the next word
	}
	for i := range n {
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}

// snakeCase turns a name from any case into a token usable in an event type:
// "AgentReplied" → "agent_replied", "questionAsked" → "question_asked",
// "VIP ticket: created!" → "vip_ticket_created". It gives "" for a name with
// no letters or digits.
func snakeCase(s string) string {
	var b strings.Builder
	r := []rune(s)
	sep := false
	for i, c := range r {
		switch {
		case c < 128 && (unicode.IsLetter(c) || unicode.IsDigit(c)):
			if unicode.IsUpper(c) && i > 0 && b.Len() > 0 &&
				(unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]))) {
				sep = true
			}
			if sep && b.Len() > 0 {
				b.WriteByte('_')
			}
			sep = false
			b.WriteRune(unicode.ToLower(c))
		default:
			sep = true
		}
	}
	return b.String()
}

// dottedType snake-cases every dot-separated segment of a name and drops the
// empty ones: "ticket.AgentReplied" → "ticket.agent_replied".
func dottedType(s string) string {
	var segs []string
	for _, seg := range strings.Split(s, ".") {
		if seg = snakeCase(seg); seg != "" {
			segs = append(segs, seg)
		}
	}
	return strings.Join(segs, ".")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
