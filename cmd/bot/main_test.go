package main

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// TestMain runs the tests of this package several per CPU unless
// -test.parallel is given. They are end-to-end tests that spend most of
// their time waiting on the network and on timers (a stopping worker pool
// lets its last pull request run out, up to a second), not on the CPU, so
// the default of one test per CPU leaves a two-core machine mostly idle.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0)))
	}
	os.Exit(m.Run())
}
