package actions

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// sensitiveWords name the params and headers whose values are
// credentials: a key holding one, in any letter case, is redacted.
var sensitiveWords = []string{"authorization", "token", "secret", "password", "apikey", "api-key", "api_key", "cookie", "signature"}

// sensitive is sensitiveWords as a regular expression, with Unicode's case
// folding, for keys not in ASCII.
var sensitive = func() *regexp.Regexp {
	quoted := make([]string, len(sensitiveWords))
	for i, w := range sensitiveWords {
		quoted[i] = regexp.QuoteMeta(w)
	}
	return regexp.MustCompile("(?i)" + strings.Join(quoted, "|"))
}()

// redactParams returns params with the values of credential-like keys (at
// any depth, such as http.request headers, and inside lists) replaced by
// "<redacted>", and URLs (keys that end in "url") cut to their scheme and
// host, for logs, events and the DLQ's display. The job itself keeps them:
// a redrive needs them.
func redactParams(params map[string]any) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		switch s, isString := v.(string); {
		case isSensitive(k):
			out[k] = "<redacted>"
		case isString && len(k) >= 3 && strings.EqualFold(k[len(k)-3:], "url"):
			out[k] = redactURL(s)
		default:
			out[k] = redactValue(v)
		}
	}
	return out
}

// redactURL keeps a URL's scheme and host: its path and query may carry a
// credential (a Slack webhook's path, an api_key in the query).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "<redacted>"
	}
	if u.User == nil && (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == "" {
		return u.Scheme + "://" + u.Host + u.Path
	}
	return u.Scheme + "://" + u.Host + "/<redacted>"
}

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return redactParams(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e)
		}
		return out
	}
	return v
}

// isSensitive reports whether a key names a credential: sensitive's
// answer, without the regular expression for a key in ASCII (nearly all).
func isSensitive(k string) bool {
	var buf [64]byte
	if len(k) > len(buf) {
		return sensitive.MatchString(k)
	}
	lower := buf[:len(k)]
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= utf8.RuneSelf:
			return sensitive.MatchString(k)
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	for _, w := range sensitiveWords {
		if bytes.Contains(lower, []byte(w)) {
			return true
		}
	}
	return false
}
