package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Limits every event obeys. Ingest refuses a webhook whose body or event
// breaks them (400), and the rules consumer decodes stored events with the
// same limits, so an event that was accepted can always be decoded.
const (
	// MaxDepth is how deeply objects and arrays may nest in a webhook body
	// and in an event's data, the outermost object counting as 1. Real
	// webhooks nest fewer than 10 levels; Go's decoder stops at 10,000.
	MaxDepth = 64
	// MaxIDBytes is the longest event id. The id is the message id on the
	// bus and the start of every job id made from the event.
	MaxIDBytes = 1024
	// MaxNameBytes is the longest source or type. Both are part of the
	// event's subject on the bus, and NATS answers a protocol line longer
	// than 4 KB by closing the connection.
	MaxNameBytes = 256
)

// Errors of ParseJSON, returned wrapped.
var (
	// ErrTooDeep is JSON nested beyond MaxDepth.
	ErrTooDeep = errors.New("JSON nested too deep")
	// ErrTrailingData is anything but white space after the JSON value.
	ErrTrailingData = errors.New("data after the JSON value")
)

// ParseJSON decodes one JSON value as ingest and the rules consumer both
// do: numbers stay json.Number (exact), nesting beyond MaxDepth is refused
// before anything is decoded, and nothing may follow the value.
func ParseJSON(data []byte) (any, error) {
	return parseJSON(data, MaxDepth)
}

func parseJSON(data []byte, maxDepth int) (any, error) {
	if maxDepth >= MaxDepth {
		if v, ok := FastDecode(data, true); ok {
			return v, nil
		}
	}
	if err := checkDepth(data, maxDepth); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ErrTrailingData
	}
	return v, nil
}

// checkDepth refuses JSON whose objects and arrays nest deeper than max. It
// reads the bytes once without decoding; for JSON that is not well formed
// its answer does not matter, as the decoder refuses it next.
func checkDepth(data []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return fmt.Errorf("%w: more than %d levels of objects and arrays", ErrTooDeep, max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// Depth is how deeply objects and arrays nest in a decoded value: 0 for a
// scalar, 1 for an object or array of scalars. It stops counting at max+1.
func Depth(v any, max int) int {
	if max < 0 {
		return 0
	}
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if n := Depth(e, max-1); n > d {
				d = n
				if d >= max {
					break
				}
			}
		}
	case []any:
		for _, e := range x {
			if n := Depth(e, max-1); n > d {
				d = n
				if d >= max {
					break
				}
			}
		}
	default:
		return 0
	}
	return d + 1
}

// DecodeJSON decodes JSON keeping numbers exact: integers become int64,
// other numbers float64, and numbers too large for either stay as their
// digits. Plain json.Unmarshal would turn every number into float64, and an
// id such as 1200000 would come out as "1.2e+06".
func DecodeJSON(data []byte, v *any) error {
	if fast, ok := FastDecode(data, false); ok {
		*v = fast
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	*v = Numbers(*v)
	return nil
}

// Numbers replaces the json.Numbers in a decoded value, in place.
func Numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = Numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = Numbers(e)
		}
	case json.Number:
		return Number(x)
	}
	return v
}

// Number is the value a JSON number becomes: int64 when it is an integer
// that fits, else float64, else (out of range) its digits as a string,
// rather than an infinity that JSON cannot hold.
func Number(n json.Number) any {
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return n.String()
}

// DecodeObject decodes a JSON object (or null) with exact numbers.
func DecodeObject(data []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	var v any
	if err := DecodeJSON(data, &v); err != nil {
		return nil, err
	}
	return object(v)
}

func object(v any) (map[string]any, error) {
	switch m := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return m, nil
	default:
		return nil, fmt.Errorf("want a JSON object, got %T", v)
	}
}

// UnmarshalJSON decodes an event keeping the numbers of its data exact,
// within the limits ingest enforces (MaxDepth).
func (e *Event) UnmarshalJSON(data []byte) error {
	if e.fastUnmarshal(data) {
		return nil
	}
	type plain Event
	var raw struct {
		plain
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	var d map[string]any
	if len(bytes.TrimSpace(raw.Data)) > 0 {
		v, err := ParseJSON(raw.Data)
		if err != nil {
			return fmt.Errorf("event data: %w", err)
		}
		if d, err = object(Numbers(v)); err != nil {
			return fmt.Errorf("event data: %w", err)
		}
	}
	*e = Event(raw.plain)
	e.Data = d
	return nil
}

// fastUnmarshal decodes an event as the bot writes it, in one pass: exactly
// its attribute names, each of its type. It reports false, having changed
// nothing, for anything else, which encoding/json then decodes.
func (e *Event) fastUnmarshal(data []byte) bool {
	m, escaped, ok := FastDecodeRecord(data)
	if !ok || slices.Contains(escaped, "time") {
		return false
	}
	var out Event
	for k, v := range m {
		switch k {
		case "data":
			switch d := v.(type) {
			case nil:
			case map[string]any:
				out.Data = d
			default:
				return false
			}
			continue
		}
		s, ok := v.(string)
		if !ok {
			return false
		}
		switch k {
		case "id":
			out.ID = s
		case "source":
			out.Source = s
		case "type":
			out.Type = s
		case "subject":
			out.Subject = s
		case "time":
			if err := out.Time.UnmarshalText([]byte(s)); err != nil {
				return false
			}
		default:
			return false
		}
	}
	*e = out
	return true
}

// Decode decodes an event as stored on the bus and checks it as ingest
// did before storing it. It is the rules consumer's decoder.
func Decode(data []byte) (*Event, error) {
	ev := new(Event)
	// Not json.Unmarshal: it would scan the whole event once more to
	// validate it before the event's own one-pass decoder runs.
	if err := ev.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// Encode is the event as stored on the bus: what json.Marshal gives, in
// one pass.
func Encode(ev *Event) ([]byte, error) {
	return ev.AppendJSON(make([]byte, 0, 1024))
}
