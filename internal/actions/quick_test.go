package actions

import (
	"fmt"
	"testing"
)

// The pool remembers the last recentJobs quick jobs it finished, and no more.
func TestRecentJobs(t *testing.T) {
	var r recent
	if r.has("job-0") {
		t.Fatal("an empty memory knows a job")
	}
	const extra = 10
	for i := range recentJobs + extra {
		r.add(fmt.Sprintf("job-%d", i))
	}
	for i := range extra {
		if id := fmt.Sprintf("job-%d", i); r.has(id) {
			t.Errorf("%s is still remembered after %d later jobs", id, recentJobs)
		}
	}
	for _, i := range []int{extra, recentJobs / 2, recentJobs + extra - 1} {
		if id := fmt.Sprintf("job-%d", i); !r.has(id) {
			t.Errorf("%s is forgotten", id)
		}
	}
	if r.has("job-never") {
		t.Error("a job never finished is remembered")
	}
	if n := len(r.ids); n != recentJobs {
		t.Errorf("%d ids in the map, want %d", n, recentJobs)
	}
}
