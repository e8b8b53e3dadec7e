package comm100

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/secret"
)

// fakeClock is a clock the test moves by hand. step, when set, is added on
// every reading.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 17, 9, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder is the Transport of the client's http.Client: it sees every call
// the client makes, token fetches included, and notes the grant of each.
type recorder struct {
	mu     sync.Mutex
	grants []string // grant_type of each token call
	calls  int
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.calls++
	if strings.HasSuffix(req.URL.Path, "/oauth/token") {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(strings.NewReader(string(body)))
		form, _ := url.ParseQuery(string(body))
		r.grants = append(r.grants, form.Get("grant_type"))
	}
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) Grants() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, r.grants...)
}

// env is a simulator on a real HTTP server and a client pointed at it.
type env struct {
	sim    *comm100test.Server
	url    string
	client *Client
	rec    *recorder
}

type envOpt struct {
	sim      comm100test.Config
	oauth    bool
	now      func() time.Time
	override func(*Config)
}

func newEnv(t *testing.T, o envOpt) *env {
	t.Helper()
	sim := comm100test.New(o.sim)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	site, email, key := sim.Credentials()
	cfg := Config{BaseURL: hs.URL + comm100test.APIPrefix, SiteID: site, Email: email, APIKey: secret.String(key)}
	if o.oauth {
		_, password, clientID := sim.OAuth()
		cfg.APIKey, cfg.Password, cfg.ClientID = "", secret.String(password), clientID
	}
	if o.override != nil {
		o.override(&cfg)
	}
	rec := &recorder{}
	c, err := New(cfg, &http.Client{Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	if o.now != nil {
		c.now = o.now
	}
	return &env{sim: sim, url: hs.URL, client: c, rec: rec}
}

// count counts the recorded simulator calls to path, with status if not 0.
func (e *env) count(path string, status int) int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Path == path && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		domain string
		want   Endpoint
	}{
		{"dash11.comm100.io", Endpoint{"https://api11.comm100.io/v4/", "https://dash11.comm100.io/oauth/token"}},
		{"https://Dash17.comm100.io/", Endpoint{"https://api17.comm100.io/v4/", "https://dash17.comm100.io/oauth/token"}},
		{"portal5.comm100.io", Endpoint{"https://api5.comm100.io/api/v3/", "https://portal5.comm100.io/oauth/token"}},
		{"hosted.comm100.com", Endpoint{"https://hosted.comm100.com/api/v2/", "https://hosted.comm100.com/oauth/token"}},
		{"appportal.livelyhelp.chat", Endpoint{"https://appportal.livelyhelp.chat/api/v2/", "https://appportal.livelyhelp.chat/oauth/token"}},
		{"ent7portal.comm100.com", Endpoint{"https://ent7portal.comm100.com/api/v2/", "https://ent7portal.comm100.com/oauth/token"}},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			got, err := Endpoints(tt.domain)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"example.com", "dash.comm100.io", "dash11.comm100.io.evil.com", ""} {
		t.Run("unknown "+bad, func(t *testing.T) {
			_, err := Endpoints(bad)
			if err == nil || !strings.Contains(err.Error(), "known: dashNN.comm100.io (v4)") || !strings.Contains(err.Error(), "hosted.comm100.com") {
				t.Errorf("got %v, want an error listing the known domains", err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	base := Config{SiteID: "1", Email: "a@b.c", APIKey: "k"}
	tests := []struct {
		name      string
		mod       func(*Config)
		wantErr   string
		wantBase  string
		wantToken string
	}{
		{name: "domain", mod: func(c *Config) { c.Domain = "dash12.comm100.io" }, wantBase: "https://api12.comm100.io/v4/"},
		{name: "base url wins", mod: func(c *Config) { c.Domain = "dash12.comm100.io"; c.BaseURL = "http://127.0.0.1:1/v4" }, wantBase: "http://127.0.0.1:1/v4/"},
		{name: "nothing", mod: func(*Config) {}, wantErr: "comm100.domain or comm100.base_url: one is required"},
		{name: "unknown domain", mod: func(c *Config) { c.Domain = "example.com" }, wantErr: `comm100.domain "example.com": unknown control-panel domain`},
		{name: "relative base", mod: func(c *Config) { c.BaseURL = "/v4/" }, wantErr: "want an absolute http(s) URL"},
		{name: "ftp base", mod: func(c *Config) { c.BaseURL = "ftp://x/v4/" }, wantErr: "want an absolute http(s) URL"},
		{name: "no site", mod: func(c *Config) { c.Domain = "dash11.comm100.io"; c.SiteID = "" }, wantErr: "comm100.site_id: required"},
		{name: "key and password", mod: func(c *Config) { c.Domain = "dash11.comm100.io"; c.Password = "p" }, wantErr: "set one, not both"},
		{name: "password, domain", mod: func(c *Config) { c.Domain = "dash11.comm100.io"; c.APIKey = ""; c.Password = "p" },
			wantBase: "https://api11.comm100.io/v4/", wantToken: "https://dash11.comm100.io/oauth/token"},
		{name: "password, v4 base only", mod: func(c *Config) { c.BaseURL = "https://api15.comm100.io/v4/"; c.APIKey = ""; c.Password = "p" },
			wantBase: "https://api15.comm100.io/v4/", wantToken: "https://dash15.comm100.io/oauth/token"},
		{name: "password, simulator", mod: func(c *Config) { c.BaseURL = "http://127.0.0.1:8089/v4/"; c.APIKey = ""; c.Password = "p" },
			wantBase: "http://127.0.0.1:8089/v4/", wantToken: "http://127.0.0.1:8089/oauth/token"},
		{name: "password, token url", mod: func(c *Config) {
			c.Domain = "dash11.comm100.io"
			c.TokenURL = "https://sso.example/token"
			c.APIKey = ""
			c.Password = "p"
		}, wantBase: "https://api11.comm100.io/v4/", wantToken: "https://sso.example/token"},
		{name: "bad token url", mod: func(c *Config) { c.Domain = "dash11.comm100.io"; c.TokenURL = "token"; c.APIKey = ""; c.Password = "p" },
			wantErr: `comm100.token_url "token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			c, err := New(cfg, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.BaseURL(); got != tt.wantBase {
				t.Errorf("base: got %s, want %s", got, tt.wantBase)
			}
			gotToken := ""
			if c.tokens != nil {
				gotToken = c.tokens.url
			}
			if gotToken != tt.wantToken {
				t.Errorf("token url: got %q, want %q", gotToken, tt.wantToken)
			}
		})
	}
}

func TestAPIKeyAuth(t *testing.T) {
	tests := []struct {
		name     string
		override func(*Config)
		status   int
	}{
		{"right key", nil, 0},
		{"wrong key", func(c *Config) { c.APIKey = "wrong-key" }, http.StatusUnauthorized},
		{"wrong email", func(c *Config) { c.Email = "x@example.com" }, http.StatusUnauthorized},
		{"wrong site", func(c *Config) { c.SiteID = "1" }, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpt{override: tt.override})
			_, err := e.client.CreateTicket(t.Context(), NewTicket{Subject: "s"})
			if tt.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || !errors.Is(err, ErrUnauthorized) || !IsPermanent(err) {
				t.Fatalf("got %v, want a permanent *APIError %d", err, tt.status)
			}
			if n := e.count("/v4/ticketing/tickets", 0); n != 1 {
				t.Errorf("got %d calls, want 1: the client does not retry", n)
			}
		})
	}
}

func TestOAuth(t *testing.T) {
	t.Run("token fetched once and cached", func(t *testing.T) {
		e := newEnv(t, envOpt{oauth: true})
		for range 3 {
			if _, err := e.client.Tags(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff([]string{"password"}, e.rec.Grants()); diff != "" {
			t.Errorf("grants (-want +got):\n%s", diff)
		}
		if e.rec.calls != 4 {
			t.Errorf("the http.Client saw %d calls, want 4 (token + 3)", e.rec.calls)
		}
	})
	t.Run("concurrent callers share one fetch", func(t *testing.T) {
		e := newEnv(t, envOpt{oauth: true, sim: comm100test.Config{Faults: comm100test.Faults{Latency: 20 * time.Millisecond}}})
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Go(func() {
				_, err := e.client.Tags(t.Context())
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := e.count("/oauth/token", 0); n != 1 {
			t.Errorf("got %d token calls, want 1", n)
		}
	})
	t.Run("renewed early with the refresh grant", func(t *testing.T) {
		clock := newClock()
		e := newEnv(t, envOpt{oauth: true, sim: comm100test.Config{Now: clock.Now, TokenTTL: time.Hour}, now: clock.Now})
		steps := []struct {
			advance time.Duration
			grants  []string
		}{
			{0, []string{"password"}},
			{53 * time.Minute, []string{"password"}},                                // renewal is due 6m before expiry
			{2 * time.Minute, []string{"password", "refresh_token"}},                // 55m: renewed early
			{3 * time.Hour, []string{"password", "refresh_token", "refresh_token"}}, // long expired
		}
		for _, st := range steps {
			clock.Advance(st.advance)
			if _, err := e.client.Tags(t.Context()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(st.grants, e.rec.Grants()); diff != "" {
				t.Fatalf("after %s: grants (-want +got):\n%s", st.advance, diff)
			}
		}
		if n := e.count("/v4/ticketing/tags", http.StatusUnauthorized); n != 0 {
			t.Errorf("got %d 401 answers, want none: the token is renewed before it expires", n)
		}
	})
	t.Run("refused refresh token falls back to the password grant", func(t *testing.T) {
		clock := newClock()
		e := newEnv(t, envOpt{oauth: true, sim: comm100test.Config{Now: clock.Now, TokenTTL: time.Hour}, now: clock.Now})
		if _, err := e.client.Tags(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Spend the client's refresh token behind its back.
		resp, err := http.PostForm(e.url+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {e.client.tokens.secrets()[1]}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		clock.Advance(2 * time.Hour)
		if _, err := e.client.Tags(t.Context()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"password", "refresh_token", "password"}, e.rec.Grants()); diff != "" {
			t.Errorf("grants (-want +got):\n%s", diff)
		}
	})
	t.Run("401 on a token the client thought valid: one new token, then success", func(t *testing.T) {
		simClock := newClock()
		e := newEnv(t, envOpt{oauth: true, sim: comm100test.Config{Now: simClock.Now, TokenTTL: time.Hour}})
		if _, err := e.client.Tags(t.Context()); err != nil {
			t.Fatal(err)
		}
		simClock.Advance(2 * time.Hour) // the server expires the token; the client's clock did not move
		if _, err := e.client.Tags(t.Context()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"password", "password"}, e.rec.Grants()); diff != "" {
			t.Errorf("grants (-want +got):\n%s", diff)
		}
		if got := [2]int{e.count("/v4/ticketing/tags", 401), e.count("/v4/ticketing/tags", 200)}; got != [2]int{1, 2} {
			t.Errorf("got %d 401 and %d 200 answers, want 1 and 2", got[0], got[1])
		}
	})
	t.Run("401 again after re-authentication: fail", func(t *testing.T) {
		// Every reading of the simulator's clock moves it 2h: each token has
		// expired by the time it is used.
		simClock := newClock()
		simClock.step = 2 * time.Hour
		e := newEnv(t, envOpt{oauth: true, sim: comm100test.Config{Now: simClock.Now, TokenTTL: time.Hour}})
		_, err := e.client.Tags(t.Context())
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Message, "expired") {
			t.Fatalf("got %v, want the 401 *APIError", err)
		}
		if n, g := e.count("/v4/ticketing/tags", 0), len(e.rec.Grants()); n != 2 || g != 2 {
			t.Errorf("got %d calls and %d token fetches, want 2 and 2", n, g)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		e := newEnv(t, envOpt{oauth: true, override: func(c *Config) { c.Password = "wrong-password" }})
		_, err := e.client.Tags(t.Context())
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 401 || ae.Path != "/oauth/token" || !IsPermanent(err) {
			t.Fatalf("got %v, want a permanent 401 *APIError from the token endpoint", err)
		}
		if !strings.Contains(err.Error(), "authenticate") {
			t.Errorf("error %q does not say it failed to authenticate", err)
		}
		if n := e.count("/v4/ticketing/tags", 0); n != 0 {
			t.Errorf("got %d API calls, want none without a token", n)
		}
	})
	t.Run("token endpoint down", func(t *testing.T) {
		clock := newClock()
		e := newEnv(t, envOpt{oauth: true, sim: comm100test.Config{Now: clock.Now,
			Faults: comm100test.Faults{OutageFrom: clock.Now(), OutageFor: time.Hour}}})
		_, err := e.client.Tags(t.Context())
		if !IsTemporary(err) || !strings.Contains(err.Error(), "503") {
			t.Fatalf("got %v, want a temporary 503", err)
		}
	})
}

// gatedTransport holds the first token call until its context ends, and
// says when it has started.
type gatedTransport struct {
	started chan struct{}
	once    sync.Once
}

func (g *gatedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/oauth/token") {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.started)
			<-req.Context().Done()
			return nil, req.Context().Err()
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestCanceledTokenFetchDoesNotFailOthers: a caller that waits for another
// caller's token fetch is not failed when that caller gives up; it fetches
// the token itself.
func TestCanceledTokenFetchDoesNotFailOthers(t *testing.T) {
	sim := comm100test.New(comm100test.Config{})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	_, email, _ := sim.Credentials()
	_, password, clientID := sim.OAuth()
	gate := &gatedTransport{started: make(chan struct{})}
	c, err := New(Config{BaseURL: hs.URL + "/v4/", SiteID: comm100test.DefaultSiteID, Email: email,
		Password: secret.String(password), ClientID: clientID}, &http.Client{Transport: gate})
	if err != nil {
		t.Fatal(err)
	}
	leaderCtx, cancel := context.WithCancel(t.Context())
	leader := make(chan error, 1)
	go func() { _, err := c.Tags(leaderCtx); leader <- err }()
	<-gate.started

	follower := make(chan error, 1)
	go func() { _, err := c.Tags(t.Context()); follower <- err }()
	// Wait until the follower waits on the leader's fetch.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.tokens.mu.Lock()
		waiting := c.tokens.flight != nil && c.tokens.flight.waiters == 1
		c.tokens.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower never waited on the leader's token fetch")
		}
		runtime.Gosched()
	}
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Errorf("leader: got %v, want context.Canceled", err)
	}
	if err := <-follower; err != nil {
		t.Errorf("follower: got %v, want success", err)
	}
}
