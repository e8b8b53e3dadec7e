package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/secret"
)

// router is a ServeMux whose own answers are JSON {"error": "..."} like
// every other refusal of the bot: no route (404), a route asked with another
// method (405 with Allow), and a path that is not clean ("/hooks/../x",
// "//x"), which ServeMux would redirect (404 here: the bot serves clean
// paths only, and a webhook sender does not follow redirects).
type router struct {
	mux      *http.ServeMux
	notFound string
}

func newRouter(notFound string) *router {
	rt := &router{mux: http.NewServeMux(), notFound: notFound}
	rt.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": rt.notFound})
	})
	return rt
}

// handle routes method and path to h, and the other methods on path to a
// JSON 405.
func (rt *router) handle(method, pattern string, h http.Handler) {
	rt.mux.Handle(method+" "+pattern, h)
	allow := method
	if method == http.MethodGet {
		allow = "GET, HEAD"
	}
	rt.mux.HandleFunc(pattern, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed; use " + method})
	})
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.EscapedPath(); cleanPath(p) != p {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": rt.notFound})
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// cleanPath is ServeMux's canonical form of a path: rooted, no "." or ".."
// segments, no empty segments, the trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// requireBearer answers 401 unless the request carries "Authorization:
// Bearer <token>"; an empty token lets every request through.
func requireBearer(token secret.String, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte(token.Reveal())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") ||
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bot admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer credential (http.admin_token)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// profiles serves Go's runtime profiles under /debug/pprof/ (net/http/pprof):
// the index, the named profiles (heap, allocs, goroutine, block, mutex,
// threadcreate), a CPU profile (?seconds=N) and an execution trace. The
// command line is left out. net/http/pprof also registers its handlers on
// http.DefaultServeMux, which no server of the bot serves.
func profiles() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "the command line is not served"})
	})
	return mux
}

// profilesFor serves the profiles behind http.admin_token; with no token,
// only on a loopback admin address: a profile costs the process CPU while it
// is taken, and what it shows is nobody else's business.
func profilesFor(cfg HTTPConfig) http.Handler {
	if cfg.AdminToken == "" && !isLoopback(cfg.AdminAddr) {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{
				"error": "profiles are served only with http.admin_token set, or on a loopback http.admin_addr"})
		})
	}
	return requireBearer(cfg.AdminToken, profiles())
}

// newHTTPServer is an http.Server with the configured bounds, for either listener.
func newHTTPServer(cfg HTTPConfig, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		// net/http reads up to 4 KiB past MaxHeaderBytes before it refuses.
		MaxHeaderBytes: int(cfg.MaxHeaderBytes),
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// jsonListener makes JSON of the answers that net/http writes by itself,
// before any handler runs: 431 for a request line and headers over
// http.max_header_bytes, 400 for a malformed request, 501 for an unknown
// transfer encoding. net/http writes each of them with one Write of a fixed
// shape straight to the connection (a plain-text status, then exactly these
// headers), which no handler's answer has: its headers start with Date.
type jsonListener struct {
	net.Listener
	maxHeaderBytes int64
}

func (l jsonListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonConn{Conn: c, maxHeaderBytes: l.maxHeaderBytes}, nil
}

type jsonConn struct {
	net.Conn
	maxHeaderBytes int64
}

const plainErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *jsonConn) Write(p []byte) (int, error) {
	if status, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 ")); ok {
		if i := bytes.Index(status, []byte(plainErrorHeaders)); i >= 3 && !bytes.Contains(status[:i], []byte("\r\n")) {
			if _, err := c.Conn.Write(c.jsonAnswer(string(status[:i]))); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// jsonAnswer turns net/http's status line ("431 Request Header Fields Too
// Large", "400 Bad Request: missing required Host header") into a JSON answer.
func (c *jsonConn) jsonAnswer(statusLine string) []byte {
	code, err := strconv.Atoi(statusLine[:3])
	if err != nil {
		code = http.StatusBadRequest
	}
	msg := strings.TrimSpace(statusLine[3:])
	if _, detail, ok := strings.Cut(msg, ": "); ok {
		msg = detail
	}
	msg = strings.ToLower(msg)
	if code == http.StatusRequestHeaderFieldsTooLarge {
		msg = fmt.Sprintf("request line and headers are larger than %d bytes", c.maxHeaderBytes)
	}
	body, _ := json.Marshal(map[string]string{"error": msg})
	body = append(body, '\n')
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// CloseWrite lets net/http half-close the connection after a 431, as it does
// on a bare TCP connection, so that the client reads the answer before the
// connection is reset.
func (c *jsonConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// isLoopback reports whether a listen address binds only this host.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
