package comm100

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
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
