package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest writes req on a new connection to addr, as it is, and reads
// the answer while the request is still being written (a server may answer
// before it read everything).
func rawRequest(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = io.WriteString(conn, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// wantJSONError checks that an answer is the documented JSON refusal.
func wantJSONError(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("got %d %q, want %d", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q, want application/json; body %q", ct, body)
	}
	var out map[string]string
	if err := json.Unmarshal(body, &out); err != nil || out["error"] == "" {
		t.Errorf("body %q is not JSON {\"error\": ...}", body)
	}
}

// TestAdminEndpointsHaveTheirOwnListener: the webhook listener answers
// /hooks/... only; health, readiness, metrics and reload are on the admin
// listener, which binds the loopback interface unless told otherwise.
func TestAdminEndpointsHaveTheirOwnListener(t *testing.T) {
	t.Parallel()
	a := startBot(t)
	admin := []struct{ method, path string }{
		{http.MethodGet, "/healthz"},
		{http.MethodGet, "/readyz"},
		{http.MethodGet, "/metrics"},
		{http.MethodPost, "/-/reload"},
	}
	for _, e := range admin {
		t.Run(e.method+" "+e.path, func(t *testing.T) {
			req, _ := http.NewRequest(e.method, "http://"+a.Addr()+e.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantJSONError(t, resp, body, http.StatusNotFound)

			req, _ = http.NewRequest(e.method, "http://"+a.AdminAddr()+e.path, nil)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("admin listener: got %d, want 200", resp.StatusCode)
			}
		})
	}

	cfg, err := loadTestConfig(t, "{}")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.AdminAddr != "127.0.0.1:8081" || !isLoopback(cfg.HTTP.AdminAddr) {
		t.Errorf("default http.admin_addr %q, want 127.0.0.1:8081", cfg.HTTP.AdminAddr)
	}
	if _, err := loadTestConfig(t, "http: {addr: ':9000', admin_addr: ':9000'}"); err == nil || !strings.Contains(err.Error(), "http.admin_addr: must differ from http.addr") {
		t.Errorf("the same address for both listeners: got %v", err)
	}
}

// TestAdminTokenGuardsMetricsAndReload: with http.admin_token set, metrics,
// reload and the profiles want it as a bearer credential; health and readiness stay open
// for probes. The token is not a flag.
func TestAdminTokenGuardsMetricsAndReload(t *testing.T) {
	t.Parallel()
	const token = "adm1n-t0ken-5e3c"
	a := startBot(t, "--http.admin_token", token) // passed as BOT_HTTP__ADMIN_TOKEN
	call := func(method, path, auth string) *http.Response {
		req, _ := http.NewRequest(method, "http://"+a.AdminAddr()+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), token) {
			t.Errorf("%s %s shows the token", method, path)
		}
		if resp.StatusCode == http.StatusUnauthorized {
			wantJSONError(t, resp, body, http.StatusUnauthorized)
		}
		return resp
	}
	tests := []struct {
		method, path, auth string
		want               int
	}{
		{http.MethodGet, "/metrics", "", http.StatusUnauthorized},
		{http.MethodGet, "/metrics", "Bearer wrong", http.StatusUnauthorized},
		{http.MethodGet, "/metrics", "Bearer " + token, http.StatusOK},
		{http.MethodPost, "/-/reload", "", http.StatusUnauthorized},
		{http.MethodPost, "/-/reload", "Bearer " + token, http.StatusOK},
		{http.MethodGet, "/debug/pprof/heap", "", http.StatusUnauthorized},
		{http.MethodGet, "/debug/pprof/heap", "Bearer " + token, http.StatusOK},
		{http.MethodGet, "/debug/pprof/goroutine?debug=1", "Bearer " + token, http.StatusOK},
		{http.MethodGet, "/debug/pprof/cmdline", "Bearer " + token, http.StatusNotFound},
		{http.MethodPost, "/debug/pprof/heap", "Bearer " + token, http.StatusMethodNotAllowed},
		{http.MethodGet, "/healthz", "", http.StatusOK},
		{http.MethodGet, "/readyz", "", http.StatusOK},
	}
	for _, tt := range tests {
		if got := call(tt.method, tt.path, tt.auth).StatusCode; got != tt.want {
			t.Errorf("%s %s with %q: got %d, want %d", tt.method, tt.path, tt.auth, got, tt.want)
		}
	}
	var stdout, stderr strings.Builder
	err := run(t.Context(), []string{"serve", "--http.admin_token", token}, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(stderr.String(), "unknown flag: --http.admin_token") {
		t.Errorf("--http.admin_token as a flag: got %v, stderr %q; want an unknown flag", err, stderr.String())
	}
}

// TestProfilesOffLoopbackNeedAToken: with no http.admin_token, the
// profiles are served on a loopback admin address and nowhere else.
func TestProfilesOffLoopbackNeedAToken(t *testing.T) {
	t.Parallel()
	get := func(addr string) int {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://127.0.0.1:" + port + "/debug/pprof/heap")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			wantJSONError(t, resp, body, resp.StatusCode)
		}
		return resp.StatusCode
	}
	if got := get(startBot(t).AdminAddr()); got != http.StatusOK {
		t.Errorf("loopback admin address, no token: got %d, want 200", got)
	}
	if got := get(startBot(t, "--http.admin_addr", ":0").AdminAddr()); got != http.StatusNotFound {
		t.Errorf("admin address on every interface, no token: got %d, want 404", got)
	}
}

// TestRefusalsAreJSON: the answers of the routers and of net/http itself
// (not only the webhook handler's) are the documented JSON refusals, and no
// path is redirected.
func TestRefusalsAreJSON(t *testing.T) {
	t.Parallel()
	a := startBot(t, "--http.max_header_bytes", "4096")
	hooks, admin := a.Addr(), a.AdminAddr()
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: bot\r\n\r\n" }
	post := func(path string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	}
	tests := []struct {
		name, addr, req string
		status          int
		allow           string
	}{
		{"a third path segment", hooks, post("/hooks/comm100/T/extra"), http.StatusNotFound, ""},
		{"a trailing slash", hooks, post("/hooks/comm100/"), http.StatusNotFound, ""},
		{"dot segments", hooks, post("/hooks/../hooks/comm100"), http.StatusNotFound, ""},
		{"a double slash", hooks, post("//hooks/comm100"), http.StatusNotFound, ""},
		{"the root", hooks, get("/"), http.StatusNotFound, ""},
		{"hooks alone", hooks, post("/hooks"), http.StatusNotFound, ""},
		{"a webhook with GET", hooks, get("/hooks/comm100"), http.StatusMethodNotAllowed, "POST"},
		{"a URL over the header limit", hooks, get("/hooks/comm100?x=" + strings.Repeat("a", 2<<20)), http.StatusRequestHeaderFieldsTooLarge, ""},
		{"no Host header", hooks, "POST /hooks/comm100 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", http.StatusBadRequest, ""},
		{"an unknown transfer encoding", hooks, "POST /hooks/comm100 HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: rot13\r\n\r\n", http.StatusNotImplemented, ""},
		{"a malformed request line", hooks, "BLAH\r\n\r\n", http.StatusBadRequest, ""},
		{"admin: unknown path", admin, get("/nope"), http.StatusNotFound, ""},
		{"admin: POST healthz", admin, post("/healthz"), http.StatusMethodNotAllowed, "GET, HEAD"},
		{"admin: GET reload", admin, get("/-/reload"), http.StatusMethodNotAllowed, "POST"},
		{"admin: dot segments", admin, get("/x/../metrics"), http.StatusNotFound, ""},
		{"admin: a URL over the header limit", admin, get("/metrics?x=" + strings.Repeat("a", 2<<20)), http.StatusRequestHeaderFieldsTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawRequest(t, tt.addr, tt.req)
			wantJSONError(t, resp, body, tt.status)
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("redirected to %q", loc)
			}
			if tt.allow != "" && resp.Header.Get("Allow") != tt.allow {
				t.Errorf("Allow %q, want %q", resp.Header.Get("Allow"), tt.allow)
			}
		})
	}
}

// TestReadHeaderTimeoutIsConfigurable: http.read_header_timeout bounds both
// listeners, and a client that stops sending its headers is cut off.
func TestReadHeaderTimeoutIsConfigurable(t *testing.T) {
	t.Parallel()
	a := startBot(t, "--http.read_header_timeout", "300ms")
	for _, srv := range []*http.Server{a.srv, a.adminSrv} {
		if srv.ReadHeaderTimeout != 300*time.Millisecond || srv.MaxHeaderBytes != 64<<10 {
			t.Errorf("server read header timeout %s, max header bytes %d; want 300ms, 65536", srv.ReadHeaderTimeout, srv.MaxHeaderBytes)
		}
	}
	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /hooks/comm100 HTTP/1.1\r\nHost: bot\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a request whose headers never end: read %d bytes, %v; want the connection closed", n, err)
	}
}
