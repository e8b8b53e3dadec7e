package comm100

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// maxPages bounds how many pages one list iteration fetches, against a server
// that always says there is a next page.
const maxPages = 10_000

// page is one page of a list as Comm100 sends it: the items under a named
// key with nextPage, previousPage and total, or a bare JSON array.
type page[T any] struct {
	items []T
	more  bool // nextPage was a non-empty URL
	total int  // -1 when not sent
}

// decodePage decodes a bare array or an object holding the list under key
// (or under "list", which searches use).
func decodePage[T any](data []byte, key string) (page[T], error) {
	data = bytes.TrimSpace(data)
	p := page[T]{total: -1}
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return p, nil
	}
	if data[0] == '[' {
		err := json.Unmarshal(data, &p.items)
		return p, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return p, err
	}
	raw, ok := obj[key]
	if !ok {
		raw, ok = obj["list"]
	}
	if !ok {
		return p, fmt.Errorf("answer has no %q list", key)
	}
	if err := json.Unmarshal(raw, &p.items); err != nil {
		return p, fmt.Errorf("%s: %w", key, err)
	}
	if next, ok := obj["nextPage"]; ok {
		var s *string
		if json.Unmarshal(next, &s) == nil && s != nil && *s != "" {
			p.more = true
		}
	}
	if t, ok := obj["total"]; ok {
		var n flexNumber
		if json.Unmarshal(t, &n) == nil {
			p.total = int(n)
		}
	}
	return p, nil
}

// list iterates over every item of a GET list, page after page: it asks for
// pageIndex 2, 3, ... while the answer names a nextPage. Page URLs from the
// server are not followed, so credentials only go to the configured base.
// An error ends the iteration.
func list[T any](ctx context.Context, c *Client, path string, query url.Values, key string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		q := url.Values{}
		for k, vs := range query {
			q[k] = vs
		}
		index := 1
		if v := q.Get("pageIndex"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				yield(zero, fmt.Errorf("comm100 GET %s: pageIndex %q: want a positive integer", path, v))
				return
			}
			index = n
		}
		seen := 0
		for range maxPages {
			if index > 1 {
				q.Set("pageIndex", strconv.Itoa(index))
			}
			data, err := c.call(ctx, http.MethodGet, path, q, nil)
			if err != nil {
				yield(zero, err)
				return
			}
			p, err := decodePage[T](data, key)
			if err != nil {
				yield(zero, fmt.Errorf("comm100 GET %s: decode page %d: %w", path, index, err))
				return
			}
			for _, it := range p.items {
				if !yield(it, nil) {
					return
				}
			}
			seen += len(p.items)
			if !p.more || len(p.items) == 0 || (p.total >= 0 && seen >= p.total) {
				return
			}
			index++
		}
		yield(zero, fmt.Errorf("comm100 GET %s: more than %d pages", path, maxPages))
	}
}

// collect gathers a whole list into a slice.
func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	out := []T{}
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
