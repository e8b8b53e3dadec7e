// Package idhash turns ids into 128-bit hashes, for sets of many ids that
// must hold no pointers: Go's collector walks every string in a map at each
// cycle, and never a map of fixed-size keys. Two ids share a hash with a
// chance of about 2^-128 per pair, negligible for the millions a set holds.
package idhash

import "hash/maphash"

// Sum is the hash of an id.
type Sum [2]uint64

// Hasher hashes ids with seeds of its own, made at random by New: sums are
// comparable only within one Hasher.
type Hasher struct{ seeds [2]maphash.Seed }

// New returns a Hasher with new seeds.
func New() Hasher {
	return Hasher{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
}

// Of is the hash of id.
func (h Hasher) Of(id string) Sum {
	return Sum{maphash.String(h.seeds[0], id), maphash.String(h.seeds[1], id)}
}
