package actions

import (
	"bytes"
	"regexp"
	"unicode/utf8"
)

// sensitive names the params and headers whose values are credentials.
var sensitive = regexp.MustCompile(`(?i)authorization|token|secret|password|api[-_]?key|cookie|signature`)

// redactParams returns params with the values of credential-like keys (at
// any depth, such as http.request headers, and inside lists) replaced by
// "<redacted>", for logs and events. The job itself keeps them: a redrive
// needs them.
func redactParams(params map[string]any) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		if isSensitive(k) {
			out[k] = "<redacted>"
			continue
		}
		out[k] = redactValue(v)
	}
	return out
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

// sensitiveWords are what sensitive matches, for keys in ASCII (nearly all).
var sensitiveWords = []string{"authorization", "token", "secret", "password", "apikey", "api-key", "api_key", "cookie", "signature"}

// isSensitive reports whether a key names a credential: sensitive's
// answer, without the regular expression for a key in ASCII.
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
