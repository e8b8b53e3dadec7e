package actions

import (
	"bytes"
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
