package event

import (
	"bytes"
	"encoding/json"
	"fmt"
)

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
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	}
	return v
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
	switch m := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return m, nil
	default:
		return nil, fmt.Errorf("want a JSON object, got %T", v)
	}
}

// UnmarshalJSON decodes an event keeping the numbers of its data exact.
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
	d, err := DecodeObject(raw.Data)
	if err != nil {
		return fmt.Errorf("event data: %w", err)
	}
	*e = Event(raw.plain)
	e.Data = d
	return nil
}

// fastUnmarshal decodes an event as the bot writes it, in one pass: exactly
// its attribute names, each of its type. It reports false, having changed
// nothing, for anything else, which encoding/json then decodes.
func (e *Event) fastUnmarshal(data []byte) bool {
	v, ok := FastDecode(data, false)
	if !ok {
		return false
	}
	m, ok := v.(map[string]any)
	if !ok {
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
