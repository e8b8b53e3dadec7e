// Package testenv holds what the project's tests share: which of them are
// long scenarios (faults, clusters, soaks) that the default test command
// leaves out and CI runs on its own, the servers and connections they run
// on, and a log they read while the code under test writes it.
package testenv

import (
	"os"
	"testing"
)

// LongVar is the environment variable that turns the long scenarios on.
const LongVar = "BOT_LONG_TESTS"

// Long skips t unless BOT_LONG_TESTS=1: the scenario takes longer than the
// default suite's budget. CI runs them with
//
//	BOT_LONG_TESTS=1 go test -race -count=1 -run Long ./...
//
// so a long test's name must contain "Long".
func Long(t testing.TB) {
	t.Helper()
	if os.Getenv(LongVar) != "1" {
		t.Skipf("long scenario: set %s=1 to run it", LongVar)
	}
}
