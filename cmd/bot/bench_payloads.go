package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// payloads makes unique, real-shaped webhook bodies.
type payloads struct {
	kinds []payloadKind
	n     atomic.Uint64
	base  uint64
}

// payloadKind is a body template split around the id it makes unique.
type payloadKind struct {
	path  string
	parts [][]byte
	// unique formats the n-th unique id like the template's.
	unique func(n uint64) string
}

// Placeholder for the unique number in the generic template.
const benchIDMark = "@@ID@@"

const genericTemplate = `{"id":"order-@@ID@@","type":"order.created","time":"2026-03-17T09:15:00Z",` +
	`"order":{"id":"@@ID@@","status":"paid","currency":"CAD","total":129.5,` +
	`"items":[{"sku":"NW-1042","name":"Desk lamp","qty":1,"price":89.5},{"sku":"NW-2001","name":"Bulb","qty":2,"price":20}],` +
	`"shipping":{"method":"express","address":{"line1":"1055 W Georgia St","city":"Vancouver","region":"BC","postal_code":"V6E 3P3","country":"CA"}}},` +
	`"customer":{"id":"c-@@ID@@","name":"Jane Cooper","email":"jane.cooper@example.com","tier":"gold","tags":["returning","newsletter"]}}`

func newPayloads(o benchOptions) (*payloads, error) {
	p := &payloads{base: uint64(time.Now().UnixMilli()) * 1000}
	if o.Payload == "comm100" || o.Payload == "mix" {
		sample := filepath.Join(o.RulesDir, "testdata", "chat_ended_low_rating.json")
		data, err := os.ReadFile(sample)
		if err != nil {
			return nil, fmt.Errorf("the Comm100 sample body (--rules decides where): %w", err)
		}
		var probe struct {
			Event string `json:"event"`
			Chat  struct {
				ID any `json:"id"`
			} `json:"chat"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // a numeric id keeps its digits
		err = dec.Decode(&probe)
		chatID := fmt.Sprint(probe.Chat.ID)
		if err != nil || probe.Event != "chat_ended" || probe.Chat.ID == nil || chatID == "" {
			return nil, fmt.Errorf("%s: want a Comm100 chat_ended webhook with chat.id", sample)
		}
		// Every occurrence of the chat id (chat.id, visitor.chat_id) gets the unique id.
		p.kinds = append(p.kinds, payloadKind{path: o.Comm100Path, parts: bytes.Split(data, []byte(chatID)), unique: uniqueLike(chatID)})
	}
	if o.Payload == "generic" || o.Payload == "mix" {
		p.kinds = append(p.kinds, payloadKind{path: o.GenericPath, parts: bytes.Split([]byte(genericTemplate), []byte(benchIDMark)),
			unique: func(n uint64) string { return strconv.FormatUint(n, 10) }})
	}
	return p, nil
}

// uniqueLike returns a function that makes the n-th unique id in the shape
// of example: a GUID for a GUID, digits otherwise.
func uniqueLike(example string) func(n uint64) string {
	if len(example) == 36 && strings.Count(example, "-") == 4 {
		return func(n uint64) string {
			return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(n>>32), uint16(n>>16), n&0xfff, (n>>12)&0xfff, n&(1<<48-1))
		}
	}
	return func(n uint64) string { return strconv.FormatUint(n, 10) }
}

// next returns the path and a body no request sent before.
func (p *payloads) next() (path string, body []byte) {
	n := p.n.Add(1)
	k := &p.kinds[n%uint64(len(p.kinds))]
	id := k.unique(p.base + n)
	size := len(id) * (len(k.parts) - 1)
	for _, part := range k.parts {
		size += len(part)
	}
	b := make([]byte, 0, size)
	for i, part := range k.parts {
		if i > 0 {
			b = append(b, id...)
		}
		b = append(b, part...)
	}
	return k.path, b
}

// benchRule is the rule of the generic source "bench": two actions that are
// not Comm100 calls, so that the pool does real work in dry run too.
const benchRule = `# Added by bot bench: orders from the generic source "bench".
rules:
  - name: bench-order-created
    description: Two log actions for every order, for bot bench.
    on: bench.order.created
    when: data.order.total > 0
    actions:
      - do: log
        with:
          message: "order {{ data.order.id }} created: {{ data.order.total }} {{ data.order.currency }}"
      - do: log
        with:
          message: "order {{ data.order.id }} for {{ data.customer.name }} <{{ data.customer.email }}>"
`

// extraRules makes n rules that never match: 1 in 100 is a candidate for
// the events bench posts (same topic, a condition that is false), the others
// listen to other topics, 10 to a topic.
func extraRules(n int) string {
	var b strings.Builder
	b.WriteString("# Added by bot bench: rules that never match.\nrules:\n")
	topics := max(1, n/10)
	for i := range n {
		on := fmt.Sprintf("bench.kind%d.created", i%topics)
		when := fmt.Sprintf(`data.never == %d && lower(default(data.customer?.tier, "")) == "platinum"`, i)
		message := fmt.Sprintf("extra rule %d: {{ data.order?.id }}", i)
		switch {
		case i%200 == 0:
			// Comm100 events have a known shape: only its fields may be named.
			on = "comm100.chat.ended"
			when = fmt.Sprintf(`data.chat.rating == %d && lower(data.visitor.name) contains "nobody"`, -i-1)
			message = fmt.Sprintf("extra rule %d: {{ data.chat.id }}", i)
		case i%100 == 0:
			on = "bench.order.created"
		}
		fmt.Fprintf(&b, `  - name: extra-%d
    on: %s
    when: '%s'
    actions:
      - do: log
        with:
          message: "%s"
`, i, on, when, message)
	}
	return b.String()
}
