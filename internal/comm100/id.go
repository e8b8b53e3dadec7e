package comm100

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// ID is an identifier that Comm100 sends as a JSON number on some platforms
// and as a string on others. It decodes from both and encodes as a string.
type ID string

// UnmarshalJSON accepts 539, "539" and "6f1c...".
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*id = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = ID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id: want a number or a string, got %s", b)
	}
	*id = ID(n.String())
	return nil
}

// String returns the id as text.
func (id ID) String() string { return string(id) }

// jsonValue encodes id as a JSON number when it is an integer (ticket and
// chat ids are integers on v4) and as a string otherwise.
func (id ID) jsonValue() json.RawMessage {
	s := string(id)
	if s == "" {
		return json.RawMessage(`null`)
	}
	for i, r := range s {
		if (r < '0' || r > '9') && !(i == 0 && r == '-' && len(s) > 1) {
			b, _ := json.Marshal(s)
			return b
		}
	}
	if len(s) > 1 && s[0] == '0' {
		b, _ := json.Marshal(s)
		return b
	}
	return json.RawMessage(s)
}

// pathID checks that an id is given and escapes it for a path segment.
func pathID(what, id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("comm100: %s id is empty", what)
	}
	return url.PathEscape(id), nil
}

// IsGUID reports whether s is a GUID, in the dashed form the REST API uses
// ("16c2cc3a-1b15-4b4f-9298-1cd04d6cec15") or the 32 hex digits of
// ticket-trigger payloads ("8086c96675144efaa3140762462a62d8").
func IsGUID(s string) bool {
	switch len(s) {
	case 36:
		for i, r := range s {
			switch i {
			case 8, 13, 18, 23:
				if r != '-' {
					return false
				}
			default:
				if !isHex(r) {
					return false
				}
			}
		}
		return true
	case 32:
		for _, r := range s {
			if !isHex(r) {
				return false
			}
		}
		return true
	}
	return false
}

// SameGUID reports whether a and b are the same GUID, whatever their case
// and whether they are written with dashes.
func SameGUID(a, b string) bool {
	if !IsGUID(a) || !IsGUID(b) {
		return false
	}
	return strings.EqualFold(strings.ReplaceAll(a, "-", ""), strings.ReplaceAll(b, "-", ""))
}

// IsIntID reports whether s is a positive decimal integer, the form of
// ticket, REST chat and REST offline-message ids.
func IsIntID(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isHex(r rune) bool {
	return (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F')
}

// Enum is a value that some shards send as a string ("normal") and others as
// a number (0): the chat page gives chat status as both. It decodes from
// either and keeps the text.
type Enum string

// UnmarshalJSON accepts a string or a number.
func (e *Enum) UnmarshalJSON(b []byte) error {
	var id ID
	if err := id.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("enum: want a string or a number, got %s", b)
	}
	*e = Enum(id)
	return nil
}
