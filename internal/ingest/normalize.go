package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// decodeJSON decodes a JSON object keeping numbers exact.
func decodeJSON(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("body is not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("body has data after the JSON object")
	}
	if m == nil {
		return nil, fmt.Errorf("body is not a JSON object")
	}
	return m, nil
}

var msDate = regexp.MustCompile(`^/Date\((-?\d+)([+-]\d{4})?\)/$`)

// parseMSDate turns "/Date(1584415749307)/" into a UTC time.
func parseMSDate(s string) (time.Time, bool) {
	m := msDate.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// normalizeValue rewrites a decoded JSON value in place for rules: Microsoft
// JSON dates become RFC 3339, numbers become int64 or float64, ids become
// strings, and {name, value} lists become maps.
func normalizeValue(key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeValue(k, e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeValue("", e)
		}
		if strings.HasPrefix(key, "custom_") {
			if m, ok := nameValueMap(x); ok {
				return m
			}
		}
		return x
	case json.Number:
		if isIDKey(key) {
			return x.String()
		}
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
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
	return k == "id" || strings.HasSuffix(k, "_id") || strings.HasSuffix(k, "Id") || k == "eventId"
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
