// Package secret holds credentials so that they cannot be printed by accident.
package secret

import "log/slog"

// String is a credential. It prints, logs and marshals as "<redacted>" so that
// no code path can leak it by accident; use Reveal where the value is needed.
type String string

const redacted = "<redacted>"

// Reveal returns the secret value itself.
func (s String) Reveal() string { return string(s) }

func (s String) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s String) GoString() string { return s.String() }

// LogValue implements slog.LogValuer.
func (s String) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler, so JSON and YAML output are redacted too.
func (s String) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
