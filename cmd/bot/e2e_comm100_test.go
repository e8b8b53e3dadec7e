package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

// TestEndToEndWithOAuth runs the bot with a password and client id instead
// of an API key: the token is fetched from the simulator's token endpoint
// through the same rate-limited client, and the ticket call carries it.
func TestEndToEndWithOAuth(t *testing.T) {
	t.Parallel()
	sim := comm100test.New(comm100test.Config{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	hs := srv.URL
	site, email, _ := sim.Credentials()
	_, password, clientID := sim.OAuth()
	a := startBot(t,
		"--comm100.base_url", hs+comm100test.APIPrefix,
		"--comm100.site_id", site,
		"--comm100.email", email,
		"--comm100.password", password,
		"--comm100.client_id", clientID,
	)
	status, _ := post(t, "http://"+a.Addr()+"/hooks/comm100", "../../rules/testdata/chat_ended_low_rating.json")
	if status != http.StatusAccepted {
		t.Fatalf("post: got %d, want 202", status)
	}
	waitFor(t, "the ticket call", 10*time.Second, func() bool { return len(ticketCalls(sim)) >= 1 })
	var tokenCalls int
	for _, r := range sim.Requests() {
		if r.Path == comm100test.TokenPath && r.Status == http.StatusOK {
			tokenCalls++
		}
	}
	if c := ticketCalls(sim)[0]; c.Status != http.StatusCreated || tokenCalls != 1 {
		t.Errorf("ticket call answered %d after %d token calls, want 201 after 1", c.Status, tokenCalls)
	}
}
