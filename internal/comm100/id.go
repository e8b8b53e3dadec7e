package comm100

import (
	"bytes"
	"encoding/json"
	"fmt"
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
