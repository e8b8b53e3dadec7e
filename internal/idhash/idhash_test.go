package idhash

import (
	"fmt"
	"testing"
)

func TestHasher(t *testing.T) {
	h := New()
	seen := map[Sum]string{}
	for i := range 100_000 {
		id := fmt.Sprintf("chat.ended:%d", i)
		s := h.Of(id)
		if s != h.Of(id) {
			t.Fatalf("%s hashes differently twice", id)
		}
		if s[0] == s[1] {
			t.Fatalf("%s: both halves %x: the seeds are the same", id, s[0])
		}
		if other, ok := seen[s]; ok {
			t.Fatalf("%s and %s share a hash", id, other)
		}
		seen[s] = id
	}
	if New().Of("a") == h.Of("a") {
		t.Error("two hashers agree: their seeds are not their own")
	}
}
