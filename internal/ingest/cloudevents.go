package ingest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/comm100bot/bot/internal/event"
)

// CloudEvents 1.0 over HTTP (https://github.com/cloudevents/spec, http-protocol-binding.md).
const (
	ceStructured = "application/cloudevents+json"
	ceBatch      = "application/cloudevents-batch+json"
	ceVersion    = "1.0"
)

// cloudEventsMedia accepts structured mode (application/cloudevents+json, or
// plain JSON holding a specversion) and binary mode (ce-* headers) with JSON
// data. Batch mode is refused.
func cloudEventsMedia(h http.Header) error {
	mt := mediaType(h)
	switch {
	case mt == ceBatch:
		return fmt.Errorf("CloudEvents batch mode (%s) is not supported; send one event per request", ceBatch)
	case mt == ceStructured:
		return nil
	case h.Get("Ce-Specversion") != "" && mt == "":
		return nil // binary mode without data
	}
	if err := jsonMedia(h); err != nil {
		return fmt.Errorf("%w; CloudEvents in structured mode are %s", err, ceStructured)
	}
	return nil
}

// decodeCloudEvent turns a CloudEvent, in either HTTP mode, into an event:
// its id, type, subject and time are kept, its data becomes the event data.
func decodeCloudEvent(name string) decodeFunc {
	return func(r *http.Request, body []byte, received time.Time) (*event.Event, error) {
		var attrs map[string]any
		var data any
		if r.Header.Get("Ce-Specversion") != "" && mediaType(r.Header) != ceStructured {
			// Binary mode: attributes in ce-* headers, the body is the data.
			attrs = map[string]any{}
			for _, k := range []string{"specversion", "id", "source", "type", "subject", "time"} {
				if v := r.Header.Get("Ce-" + k); v != "" {
					attrs[k] = v
				}
			}
			if len(bytes.TrimSpace(body)) > 0 {
				v, err := decodeAnyJSON(body)
				if err != nil {
					return nil, fmt.Errorf("CloudEvent data: %w", err)
				}
				data = v
			}
		} else {
			v, err := decodeAnyJSON(body)
			if err != nil {
				return nil, err
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("a structured CloudEvent is a JSON object")
			}
			attrs = m
			data = m["data"]
			if b64, ok := m["data_base64"].(string); ok && data == nil {
				raw, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					return nil, fmt.Errorf("CloudEvent data_base64 is not base64")
				}
				if v, err := decodeAnyJSON(raw); err == nil {
					data = v
				} else {
					data = map[string]any{"data_base64": b64}
				}
			}
		}
		str := func(k string) string { s, _ := attrs[k].(string); return s }
		if v := str("specversion"); v != ceVersion {
			return nil, fmt.Errorf("CloudEvent specversion is %s, want %q", event.Excerpt(v), ceVersion)
		}
		for _, k := range []string{"id", "source", "type"} {
			if str(k) == "" {
				return nil, fmt.Errorf("CloudEvent has no %s attribute", k)
			}
		}
		ev := &event.Event{
			ID:      str("id"),
			Source:  name,
			Type:    str("type"),
			Subject: str("subject"),
			Time:    received.UTC(),
			Data:    map[string]any{},
		}
		if data != nil {
			ev.Data = asObject(plainValue(data))
		}
		if t := str("time"); t != "" {
			ts, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return nil, fmt.Errorf("CloudEvent time %s is not RFC 3339", event.Excerpt(t))
			}
			ev.Time = ts.UTC()
		}
		return ev, nil
	}
}

// mediaType is the request's content type without parameters, lower case;
// "" when there is none.
func mediaType(h http.Header) string {
	ct := h.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return mt
}
