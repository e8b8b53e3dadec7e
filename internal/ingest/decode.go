package ingest

import (
	"time"

	"github.com/comm100bot/bot/internal/event"
)

// DecodeComm100 turns a Comm100 webhook body into the canonical event, as a
// source of kind comm100 named source would. Rule tests and `bot rules eval`
// use it to feed webhook bodies to the rules.
func DecodeComm100(source string, body []byte, received time.Time) (*event.Event, error) {
	return normalizeComm100(source, body, received)
}
