// Package ingest takes webhooks in: POST /hooks/{source}[/{token}].
//
// A request goes through its source's checks, cheapest first: the source
// exists (404), the method is POST (405), the URL token and the remote
// address (401), the content type (415), the size, cut at the limit (413),
// the body's signature or credential (401), the body itself (400). Only then
// is the body normalized into the canonical event (package event) and
// published to the EVENTS stream with the event id as Nats-Msg-Id; the answer
// is 202 once JetStream has acknowledged it, 200 {"duplicate": true} when an
// event with that id was stored within nats.dedup_window (RecentIDs, or the
// stream's own short window), and 503 with Retry-After when it could not
// take the event, which then was not stored. A refusal publishes nothing.
//
// Sources come in three kinds, one file each: comm100.go (every Comm100
// webhook shape, told apart by its keys, normalized by normalize.go),
// generic.go (any JSON, with expr expressions for type, id and subject) and
// cloudevents.go. verify.go and preset.go hold the checks a source can ask
// for; request.go builds the request a configured sender would make, for
// `bot send` and tests.
//
// The handler is safe for concurrent use; it holds no state between requests
// beyond its configuration and metrics.
package ingest
