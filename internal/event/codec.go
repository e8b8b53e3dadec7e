package event

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// This file holds a JSON decoder and encoder for the values events carry
// (objects, arrays, strings, numbers, booleans, null), written for the hot
// path: every webhook is decoded once and encoded once by ingest, and
// decoded again by the rules. encoding/json scans a document two or three
// times and goes through reflection and json.Number; these do one pass.
//
// They give exactly what encoding/json gives, or give up: the decoder on
// anything unusual (invalid JSON, escapes it does not handle, invalid UTF-8,
// nesting near MaxDepth), the encoder on a type it does not know. The callers then
// run encoding/json, which also produces its usual errors. The tests compare
// both on the samples and under fuzzing.

// FastDecode decodes the single JSON value that is data (surrounding white
// space allowed). With keepNumbers, numbers are json.Number, as a
// json.Decoder with UseNumber gives them; without, they are what Numbers
// makes of them. ok is false when the fast path gave up; the caller then
// decodes with encoding/json.
func FastDecode(data []byte, keepNumbers bool) (v any, ok bool) {
	d := fastDecoder{data: data, keepNumbers: keepNumbers}
	defer d.free()
	d.space()
	v, ok = d.value(0)
	if !ok {
		return nil, false
	}
	d.space()
	if d.i != len(d.data) {
		return nil, false
	}
	return v, true
}

// FastDecodeRecord decodes a JSON object whose members are a record's
// fields, as encoding/json decodes into a struct: it gives up, besides
// where FastDecode does, on a field given twice (encoding/json reports a
// type error in a copy that the last one would hide). escaped lists the
// fields whose value is a string written with escapes, which a field
// decoded from its raw bytes (a time) may refuse where the unescaped
// string would do.
func FastDecodeRecord(data []byte) (fields map[string]any, escaped []string, ok bool) {
	d := fastDecoder{data: data, record: true}
	defer d.free()
	d.space()
	if d.i >= len(d.data) || d.data[d.i] != '{' {
		return nil, nil, false
	}
	v, ok := d.value(0)
	if !ok {
		return nil, nil, false
	}
	d.space()
	if d.i != len(d.data) {
		return nil, nil, false
	}
	return v.(map[string]any), d.escapedFields, true
}

type fastDecoder struct {
	data        []byte
	i           int
	keepNumbers bool
	// record is set for FastDecodeRecord: the top-level object's fields.
	record        bool
	escapedFields []string
	// escapes is set when the last string read had escapes.
	escapes bool
	// pairs holds the members of the objects being read, innermost last,
	// so that each map is made once, at its size.
	pairs *[]pair
}

type pair struct {
	k string
	v any
}

// maxRecordFields bounds the fields FastDecodeRecord takes: an event or a
// job has a dozen.
const maxRecordFields = 32

var pairsPool = sync.Pool{New: func() any { p := make([]pair, 0, 64); return &p }}

func (d *fastDecoder) free() {
	if d.pairs == nil || cap(*d.pairs) > 4096 {
		return // a huge object's scratch is not kept
	}
	clear((*d.pairs)[:cap(*d.pairs)])
	*d.pairs = (*d.pairs)[:0]
	pairsPool.Put(d.pairs)
	d.pairs = nil
}

func (d *fastDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) value(depth int) (any, bool) {
	if d.i >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.i]; {
	case (c == '{' || c == '[') && depth+1 >= MaxDepth:
		// Near MaxDepth the slow path decides, and refuses what is too deep.
		return nil, false
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, ok := d.string()
		return s, ok
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, false
}

func (d *fastDecoder) literal(lit string) bool {
	if len(d.data)-d.i < len(lit) || string(d.data[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

func (d *fastDecoder) object(depth int) (any, bool) {
	d.i++ // {
	d.space()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return map[string]any{}, true
	}
	if d.pairs == nil {
		d.pairs = pairsPool.Get().(*[]pair)
	}
	mark := len(*d.pairs)
	for {
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return nil, false
		}
		k, ok := d.string()
		if !ok {
			return nil, false
		}
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.space()
		top := d.record && depth == 0
		if top {
			if len(*d.pairs)-mark >= maxRecordFields {
				return nil, false // no record of ours has so many
			}
			for _, p := range (*d.pairs)[mark:] {
				if p.k == k {
					return nil, false
				}
			}
			d.escapes = false
		}
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		if _, str := v.(string); top && str && d.escapes {
			d.escapedFields = append(d.escapedFields, k)
		}
		*d.pairs = append(*d.pairs, pair{k, v})
		d.space()
		if d.i >= len(d.data) {
			return nil, false
		}
		switch d.data[d.i] {
		case ',':
			d.i++
			d.space()
		case '}':
			d.i++
			members := (*d.pairs)[mark:]
			m := make(map[string]any, len(members))
			for _, p := range members {
				m[p.k] = p.v // a key given twice: the last wins, as in encoding/json
			}
			*d.pairs = (*d.pairs)[:mark]
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *fastDecoder) array(depth int) (any, bool) {
	d.i++ // [
	a := make([]any, 0)
	d.space()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.space()
		if d.i >= len(d.data) {
			return nil, false
		}
		switch d.data[d.i] {
		case ',':
			d.i++
			d.space()
		case ']':
			d.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// string reads a quoted string. It handles the common escapes and valid
// UTF-8; anything else gives up.
func (d *fastDecoder) string() (string, bool) {
	d.i++ // "
	start := d.i
	// The plain case: no escapes, nothing but printable ASCII and valid UTF-8.
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			s := string(d.data[start:d.i])
			d.i++
			return s, true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, size := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			d.i += size
		}
	}
	return "", false
}

// escaped continues a string that has escapes from d.i, with the plain
// part from start.
func (d *fastDecoder) escaped(start int) (string, bool) {
	d.escapes = true
	b := make([]byte, 0, 2*(d.i-start)+16)
	b = append(b, d.data[start:d.i]...)
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return string(b), true
		case c == '\\':
			if d.i+1 >= len(d.data) {
				return "", false
			}
			e := d.data[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", false
				}
				if r >= 0xD800 && r < 0xE000 {
					// A surrogate pair, or give up.
					if r >= 0xDC00 || d.i+1 >= len(d.data) || d.data[d.i] != '\\' || d.data[d.i+1] != 'u' {
						return "", false
					}
					d.i += 2
					r2, ok := d.hex4()
					if !ok || r2 < 0xDC00 || r2 >= 0xE000 {
						return "", false
					}
					r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", false
			}
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			b = append(b, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			b = append(b, d.data[d.i:d.i+size]...)
			d.i += size
		}
	}
	return "", false
}

func (d *fastDecoder) hex4() (rune, bool) {
	if len(d.data)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// number reads a number of JSON's grammar.
func (d *fastDecoder) number() (any, bool) {
	start := d.i
	if d.data[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i >= len(d.data) {
		return nil, false
	}
	if d.data[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return nil, false
	}
	integer := true
	if d.i < len(d.data) && d.data[d.i] == '.' {
		integer = false
		d.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		integer = false
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	lit := string(d.data[start:d.i])
	if d.keepNumbers {
		return json.Number(lit), true
	}
	if integer {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return n, true
		}
	}
	if f, err := strconv.ParseFloat(lit, 64); err == nil {
		return f, true
	}
	return lit, true
}

// AppendJSON appends the JSON encoding of the event, byte for byte what
// json.Marshal gives.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, `{"id":`...)
	b = AppendString(b, e.ID)
	b = append(b, `,"source":`...)
	b = AppendString(b, e.Source)
	b = append(b, `,"type":`...)
	b = AppendString(b, e.Type)
	b = append(b, `,"time":`...)
	var ok bool
	if b, ok = AppendTime(b, e.Time); !ok {
		return e.slowAppend(b[:start])
	}
	if e.Subject != "" {
		b = append(b, `,"subject":`...)
		b = AppendString(b, e.Subject)
	}
	b = append(b, `,"data":`...)
	if e.Data == nil {
		b = append(b, "null"...)
	} else if b, ok = AppendValue(b, e.Data); !ok {
		return e.slowAppend(b[:start])
	}
	return append(b, '}'), nil
}

// AppendTime appends t as json.Marshal writes a time; ok is false, and b
// must be discarded, for a time JSON cannot hold (a year outside 0-9999).
func AppendTime(b []byte, t time.Time) (_ []byte, ok bool) {
	text, err := t.MarshalJSON()
	if err != nil {
		return b, false
	}
	return append(b, text...), true
}

func (e *Event) slowAppend(b []byte) ([]byte, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return append(b, data...), nil
}

// AppendValue appends the JSON encoding of v, byte for byte what json.Marshal
// gives, for the types JSON decoding makes (map[string]any, []any, string,
// float64, int64, json.Number, bool, nil) and the other basic numbers. ok
// is false, and b must be discarded, for any other type or a value JSON
// cannot hold (NaN, infinities).
func AppendValue(b []byte, v any) (_ []byte, ok bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return AppendString(b, x), true
	case bool:
		return strconv.AppendBool(b, x), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case int32:
		return strconv.AppendInt(b, int64(x), 10), true
	case uint64:
		return strconv.AppendUint(b, x, 10), true
	case float64:
		return appendFloat(b, x)
	case json.Number:
		if x == "" {
			return append(b, '0'), true
		}
		if c := x[0]; c != '-' && (c < '0' || c > '9') {
			return b, false
		}
		d := fastDecoder{data: []byte(x), keepNumbers: true}
		if _, ok := d.number(); !ok || d.i != len(d.data) {
			return b, false
		}
		return append(b, x...), true
	case map[string]any:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '{')
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, k)
			b = append(b, ':')
			if b, ok = AppendValue(b, x[k]); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case []any:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = AppendValue(b, e); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case time.Time:
		t, err := x.MarshalJSON()
		if err != nil {
			return b, false
		}
		return append(b, t...), true
	}
	return b, false
}

// appendFloat formats as encoding/json does.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, byte for byte as json.Marshal
// writes it (HTML characters, U+2028 and U+2029 escaped, invalid UTF-8 as
// U+FFFD).
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
