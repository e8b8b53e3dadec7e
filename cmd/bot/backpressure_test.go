package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

// startNATS runs an external NATS server on port (-1: any free port) with
// its JetStream files in dir.
func startNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// fixedPort returns a free port below the range the kernel picks from for
// port 0. The tests running beside one that stops a server and starts it
// again on its port all listen on port 0, so they cannot take it meanwhile.
func fixedPort(t *testing.T) int {
	t.Helper()
	auto := 32768 // the lowest automatic port: Linux's default, and below BSD's
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		_, _ = fmt.Sscan(string(b), &auto)
	}
	const lowest = 10000
	for range 100 {
		port := 0 // with no range below the automatic one, any free port
		if auto > lowest {
			port = lowest + rand.IntN(auto-lowest)
		}
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			defer ln.Close()
			return ln.Addr().(*net.TCPAddr).Port
		}
	}
	t.Fatal("no free port found")
	return 0
}

func postBody(t *testing.T, url string, body []byte) (int, http.Header) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

func readyStatus(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestEndToEndBusComesBack stops the NATS server under a running bot: events
// are refused with 503 (nothing is lost: nothing was accepted), the bot is
// not ready; then the server comes back on the same port and store, the bot
// reconnects by itself, and an event accepted afterwards is carried out.
func TestEndToEndBusComesBack(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	port := fixedPort(t)
	ns := startNATS(t, port, store)
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, append(simArgs, "--nats.url", ns.ClientURL())...)
	base := "http://" + a.Addr()
	waitIdle(t, a)

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, "the bot to notice the bus is away", 10*time.Second, func() bool { return readyStatus(t, "http://"+a.AdminAddr()) == http.StatusServiceUnavailable })
	body, err := os.ReadFile("../../rules/testdata/chat_ended_low_rating.json")
	if err != nil {
		t.Fatal(err)
	}
	status, h := postBody(t, base+"/hooks/comm100", body)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("bus down: got %d Retry-After=%q, want 503 with Retry-After", status, h.Get("Retry-After"))
	}

	startNATS(t, port, store)
	waitFor(t, "the bot to reconnect", 20*time.Second, func() bool { return readyStatus(t, "http://"+a.AdminAddr()) == http.StatusOK })
	// The connection is back; JetStream may need a moment more to take
	// events: the sender retries on 503, as Retry-After tells it to.
	waitFor(t, "the event to be accepted", 20*time.Second, func() bool {
		status, _ := postBody(t, base+"/hooks/comm100", body)
		if status != http.StatusAccepted && status != http.StatusServiceUnavailable {
			t.Fatalf("after the bus came back: got %d, want 202 (or 503 while JetStream starts)", status)
		}
		return status == http.StatusAccepted
	})
	waitFor(t, "the ticket call", 20*time.Second, func() bool { return len(ticketCalls(sim)) >= 1 })
	waitIdle(t, a)
	if n := len(ticketCalls(sim)); n != 1 {
		t.Errorf("got %d ticket calls, want 1", n)
	}
}

// TestServeBoundsSlowClients opens a request that promises a body and never
// sends it: http.read_timeout must end it, instead of a connection held forever.
func TestServeBoundsSlowClients(t *testing.T) {
	t.Parallel()
	a := startBot(t, "--http.read_timeout", "300ms")
	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, err = io.WriteString(conn, "POST /hooks/comm100 HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"event\":")
	if err != nil {
		t.Fatal(err)
	}
	// Our own bound, far above the bot's: hitting it means the bot waits forever.
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the bot still held the connection after %s", time.Since(start).Round(time.Millisecond))
	}
	if strings.HasPrefix(firstLine(answer), "HTTP/1.1 2") {
		t.Errorf("a partial body was accepted: %q", answer)
	}
	t.Logf("connection ended after %s with %q", time.Since(start).Round(time.Millisecond), firstLine(answer))
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}
