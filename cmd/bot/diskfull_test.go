package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/testenv"
)

// TestLongDiskFullBotRecoversByItself runs the bot on a small disk and fills
// it. While events cannot be stored the bot answers 503 and /readyz says
// why; once space comes back it takes webhooks again without a restart, and
// every chat answered 202, before or after, gets its ticket. Before, the bot
// answered 503 until restarted and /readyz said 200 throughout.
func TestLongDiskFullBotRecoversByItself(t *testing.T) {
	testenv.Long(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	disk := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", disk).Run() })
	sim, simArgs := startSim(t, comm100test.Config{})
	a, stop := runBot(t, filepath.Join(disk, "store"), simArgs...)
	defer stop()
	admin := "http://" + a.AdminAddr()
	url := "http://" + a.Addr() + "/hooks/comm100"

	accepted := map[int]bool{}
	id := 7000000
	post := func() int {
		id++
		status, _ := postBody(t, url, chatEnded(t, id))
		if status == http.StatusAccepted {
			accepted[id] = true
		}
		return status
	}
	for range 5 {
		if s := post(); s != http.StatusAccepted {
			t.Fatalf("before the disk filled: %d", s)
		}
	}
	waitFor(t, "the first tickets", 20*time.Second, func() bool { return len(ticketCalls(sim)) == len(accepted) })

	// Fill the disk from outside, as another program would.
	ballast := filepath.Join(disk, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	for post() == http.StatusAccepted {
		if len(accepted) > 500 {
			t.Fatal("the full disk still takes events")
		}
	}
	waitFor(t, "/readyz to report the store", 10*time.Second, func() bool { return readyStatus(t, admin) == http.StatusServiceUnavailable })

	freed := time.Now()
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz after space came back", 30*time.Second, func() bool { return readyStatus(t, admin) == http.StatusOK })
	ready := time.Since(freed)
	waitFor(t, "a webhook to be taken again", 30*time.Second, func() bool { return post() == http.StatusAccepted })
	waitFor(t, "a ticket for every accepted chat", 60*time.Second, func() bool { return len(ticketCalls(sim)) >= len(accepted) })
	t.Logf("accepted %d chats; ready %s after space came back; all ticketed %s after", len(accepted), ready.Round(time.Millisecond), time.Since(freed).Round(time.Millisecond))
	waitIdle(t, a)
	chats := map[string]int{}
	for _, c := range ticketCalls(sim) {
		var b struct {
			CustomFields map[string]any `json:"customFields"`
		}
		_ = json.Unmarshal(c.Body, &b)
		chats[fmt.Sprint(b.CustomFields[comm100test.ChatIDField])]++ // the field named "Chat ID"
	}
	for id := range accepted {
		if n := chats[fmt.Sprint(id)]; n != 1 {
			t.Errorf("chat %d accepted: got %d tickets, want 1", id, n)
		}
	}
	if len(chats) != len(accepted) {
		t.Errorf("got tickets for %d chats, accepted %d", len(chats), len(accepted))
	}
}
