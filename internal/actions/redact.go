package actions

import "regexp"

// sensitive names the params and headers whose values are credentials.
var sensitive = regexp.MustCompile(`(?i)authorization|token|secret|password|api[-_]?key|cookie|signature`)

// redactParams returns params with the values of credential-like keys (at
// any depth, such as http.request headers, and inside lists) replaced by
// "<redacted>", for logs and events. The job itself keeps them: a redrive
// needs them.
func redactParams(params map[string]any) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		if sensitive.MatchString(k) {
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
