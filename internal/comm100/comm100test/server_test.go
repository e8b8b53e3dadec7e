package comm100test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 17, 9, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	sim := New(cfg)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	return sim, hs.URL
}

// answer is a decoded simulator answer.
type answer struct {
	status int
	body   map[string]any
	raw    []byte
}

// call makes one API-key call with hc (nil: a plain client).
func call(t *testing.T, hc *http.Client, method, url, body string, auth func(*http.Request)) answer {
	t.Helper()
	if hc == nil {
		hc = http.DefaultClient
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != nil {
		auth(req)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func basic(email, key string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(email, key) }
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

var okAuth = basic(DefaultEmail, DefaultAPIKey)

const site = "?siteId=" + DefaultSiteID

// checkError asserts a Comm100 error answer: status and a {code, message}
// body whose message contains want.
func checkError(t *testing.T, a answer, status int, want string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status: got %d (%s), want %d", a.status, a.raw, status)
	}
	code, _ := a.body["code"].(float64)
	msg, _ := a.body["message"].(string)
	if int(code)/1000 != status || !strings.Contains(msg, want) {
		t.Errorf("body: got %s, want code %d... and a message containing %q", a.raw, status, want)
	}
}

func token(t *testing.T, base string, form url.Values) answer {
	t.Helper()
	resp, err := http.PostForm(base+TokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func passwordForm() url.Values {
	return url.Values{"grant_type": {"password"}, "email": {DefaultEmail}, "password": {DefaultPassword}, "client_id": {DefaultClientID}}
}

func TestAuth(t *testing.T) {
	clock := newClock()
	_, base := start(t, Config{Now: clock.Now, TokenTTL: time.Hour})
	tok := token(t, base, passwordForm())
	if tok.status != http.StatusOK || tok.body["token_type"] != "bearer" || tok.body["expires_in"] != float64(3600) {
		t.Fatalf("password grant: got %d %s", tok.status, tok.raw)
	}
	access := tok.body["access_token"].(string)
	refresh := tok.body["refresh_token"].(string)

	api := base + "/v4/ticketing/tags"
	tests := []struct {
		name   string
		url    string
		auth   func(*http.Request)
		status int
		msg    string
	}{
		{"api key", api + site, okAuth, 200, ""},
		{"no credentials", api + site, nil, 401, "denied"},
		{"api key without siteId", api, okAuth, 400, "Parameter 'siteId' is required."},
		{"wrong api key", api + site, basic(DefaultEmail, "nope"), 401, "denied"},
		{"wrong email", api + site, basic("x@example.com", DefaultAPIKey), 401, "denied"},
		{"wrong site", api + "?siteId=1", okAuth, 401, "denied"},
		{"bearer", api, bearer(access), 200, ""},
		{"bearer with siteId", api + site, bearer(access), 200, ""},
		{"unknown bearer", api, bearer("forged"), 401, "denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, nil, "GET", tt.url, "", tt.auth)
			if tt.status == 200 {
				if a.status != 200 {
					t.Fatalf("got %d %s, want 200", a.status, a.raw)
				}
				return
			}
			checkError(t, a, tt.status, tt.msg)
		})
	}

	t.Run("expired bearer", func(t *testing.T) {
		clock.Advance(time.Hour)
		checkError(t, call(t, nil, "GET", api, "", bearer(access)), 401, "expired")
	})
	t.Run("refresh grant", func(t *testing.T) {
		a := token(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
		if a.status != 200 || a.body["access_token"] == "" || a.body["access_token"] == access {
			t.Fatalf("got %d %s, want a new token", a.status, a.raw)
		}
		if got := call(t, nil, "GET", api, "", bearer(a.body["access_token"].(string))); got.status != 200 {
			t.Errorf("refreshed token: got %d %s", got.status, got.raw)
		}
		checkError(t, token(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}), 401, "refresh token")
	})

	tokenErrors := []struct {
		name   string
		form   url.Values
		status int
		msg    string
	}{
		{"wrong password", url.Values{"grant_type": {"password"}, "email": {DefaultEmail}, "password": {"x"}, "client_id": {DefaultClientID}}, 401, "incorrect"},
		{"wrong client", url.Values{"grant_type": {"password"}, "email": {DefaultEmail}, "password": {DefaultPassword}, "client_id": {"x"}}, 401, "client_id"},
		{"no client", url.Values{"grant_type": {"password"}, "email": {DefaultEmail}, "password": {DefaultPassword}}, 400, "'client_id' is required"},
		{"unknown grant", url.Values{"grant_type": {"client_credentials"}}, 400, "grant_type"},
		{"unknown refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, 401, "refresh token"},
	}
	for _, tt := range tokenErrors {
		t.Run("token/"+tt.name, func(t *testing.T) {
			a := token(t, base, tt.form)
			checkError(t, a, tt.status, tt.msg)
			if strings.Contains(string(a.raw), DefaultPassword) {
				t.Errorf("answer echoes the password: %s", a.raw)
			}
		})
	}
}

// TestRateLimit301CallsGetExactlyOne403 makes 301 calls from one IP inside 5
// minutes (0.9 s apart on the injected clock) and expects exactly the last
// one refused; one more call once the first has left the window is admitted.
func TestRateLimit301CallsGetExactlyOne403(t *testing.T) {
	clock := newClock()
	sim, base := start(t, Config{Now: clock.Now})
	t0 := clock.Now()
	var refused []int
	for i := range 301 {
		a := call(t, nil, "GET", base+"/v4/ticketing/tags"+site, "", okAuth)
		switch a.status {
		case http.StatusOK:
		case http.StatusForbidden:
			refused = append(refused, i)
			checkError(t, a, 403, "limit was exceeded")
		default:
			t.Fatalf("call %d: got %d %s", i, a.status, a.raw)
		}
		if i < 300 {
			clock.Advance(900 * time.Millisecond)
		}
	}
	if span := clock.Now().Sub(t0); span >= 5*time.Minute {
		t.Fatalf("the calls span %s, want less than 5m", span)
	}
	if diff := cmp.Diff([]int{300}, refused); diff != "" {
		t.Errorf("refused calls (-want +got):\n%s", diff)
	}
	// The first call was at t0; at t0+5m it is out of the window (t-5m, t].
	clock.Advance(t0.Add(5 * time.Minute).Sub(clock.Now()))
	if a := call(t, nil, "GET", base+"/v4/ticketing/tags"+site, "", okAuth); a.status != http.StatusOK {
		t.Errorf("call once the first left the window: got %d %s, want 200", a.status, a.raw)
	}
	reqs := sim.Requests()
	if got := reqs[300].Status; got != http.StatusForbidden {
		t.Errorf("recorded status of call 301: got %d, want 403", got)
	}
}

// TestRateLimitIsASlidingWindow checks admissions at chosen instants against
// a budget of 3 per 10 s. A fixed window would admit the calls at 10.1 s.
func TestRateLimitIsASlidingWindow(t *testing.T) {
	clock := newClock()
	_, base := start(t, Config{Now: clock.Now, RateLimit: IPRateLimit{Calls: 3, Per: 10 * time.Second}})
	t0 := clock.Now()
	steps := []struct {
		at   time.Duration
		want int
	}{
		{0, 200},
		{9 * time.Second, 200},
		{9500 * time.Millisecond, 200},
		{9900 * time.Millisecond, 403},  // 0, 9, 9.5 in (−0.1, 9.9]
		{10 * time.Second, 200},         // 0 has left (0, 10]
		{10100 * time.Millisecond, 403}, // 9, 9.5, 10 in (0.1, 10.1]
		{19 * time.Second, 200},         // (9, 19] holds 9.5 and 10 only
		{19100 * time.Millisecond, 403}, // 9.5, 10, 19
	}
	for _, st := range steps {
		clock.Advance(t0.Add(st.at).Sub(clock.Now()))
		if a := call(t, nil, "GET", base+"/v4/ticketing/tags"+site, "", okAuth); a.status != st.want {
			t.Errorf("call at %s: got %d, want %d", st.at, a.status, st.want)
		}
	}
}

// TestRateLimitIsPerClientIP calls from 127.0.0.1 and 127.0.0.2: each has
// its own budget.
func TestRateLimitIsPerClientIP(t *testing.T) {
	clock := newClock()
	sim, base := start(t, Config{Now: clock.Now, RateLimit: IPRateLimit{Calls: 2, Per: time.Minute}})
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
	}
	one, two := from("127.0.0.1"), from("127.0.0.2")
	got := map[string][]int{}
	for range 3 {
		for ip, hc := range map[string]*http.Client{"127.0.0.1": one, "127.0.0.2": two} {
			got[ip] = append(got[ip], call(t, hc, "GET", base+"/v4/ticketing/tags"+site, "", okAuth).status)
		}
	}
	want := map[string][]int{"127.0.0.1": {200, 200, 403}, "127.0.0.2": {200, 200, 403}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses per IP (-want +got):\n%s", diff)
	}
	ips := map[string]int{}
	for _, r := range sim.Requests() {
		ips[r.ClientIP]++
	}
	if diff := cmp.Diff(map[string]int{"127.0.0.1": 3, "127.0.0.2": 3}, ips); diff != "" {
		t.Errorf("recorded client IPs (-want +got):\n%s", diff)
	}
}

func TestFaults(t *testing.T) {
	t.Run("fail rate is an exact share", func(t *testing.T) {
		_, base := start(t, Config{Faults: Faults{FailRate: 0.25}, RateLimit: IPRateLimit{Calls: -1}})
		failed := 0
		for range 100 {
			a := call(t, nil, "GET", base+"/v4/ticketing/tags"+site, "", okAuth)
			if a.status == 500 {
				failed++
				checkError(t, a, 500, "simulated")
			}
		}
		if failed != 25 {
			t.Errorf("got %d failures in 100 calls, want 25", failed)
		}
	})
	t.Run("outage window", func(t *testing.T) {
		clock := newClock()
		from := clock.Now().Add(time.Minute)
		_, base := start(t, Config{Now: clock.Now, Faults: Faults{OutageFrom: from, OutageFor: time.Minute}})
		for _, st := range []struct {
			at   time.Duration
			want int
		}{{0, 200}, {time.Minute, 503}, {90 * time.Second, 503}, {2 * time.Minute, 200}} {
			clock.Advance(from.Add(st.at - time.Minute).Sub(clock.Now()))
			if a := call(t, nil, "GET", base+"/v4/ticketing/tags"+site, "", okAuth); a.status != st.want {
				t.Errorf("call at T%+v: got %d, want %d", st.at-time.Minute, a.status, st.want)
			}
			if st.want == 503 {
				checkError(t, token(t, base, passwordForm()), 503, "outage")
			}
		}
	})
	t.Run("latency", func(t *testing.T) {
		_, base := start(t, Config{Faults: Faults{Latency: 30 * time.Millisecond}})
		began := time.Now()
		call(t, nil, "GET", base+"/v4/ticketing/tags"+site, "", okAuth)
		if d := time.Since(began); d < 30*time.Millisecond {
			t.Errorf("answer after %s, want at least 30ms", d)
		}
	})
	t.Run("control endpoint", func(t *testing.T) {
		clock := newClock()
		sim, base := start(t, Config{Now: clock.Now})
		a := call(t, nil, "POST", base+"/_sim/faults", `{"fail_rate":0.5,"latency":"1ms","outage_for":"30s"}`, nil)
		if a.status != 200 {
			t.Fatalf("POST /_sim/faults: got %d %s", a.status, a.raw)
		}
		want := Faults{FailRate: 0.5, Latency: time.Millisecond, OutageFrom: clock.Now(), OutageFor: 30 * time.Second}
		if diff := cmp.Diff(want, sim.Faults()); diff != "" {
			t.Errorf("faults (-want +got):\n%s", diff)
		}
		if a := call(t, nil, "GET", base+"/v4/ticketing/tags"+site, "", okAuth); a.status != 503 {
			t.Errorf("call in the outage: got %d, want 503", a.status)
		}
		for _, bad := range []string{`{"fail_rate":1.5}`, `{"latency":"soon"}`, `{"failrate":0.1}`, `nope`} {
			checkError(t, call(t, nil, "POST", base+"/_sim/faults", bad, nil), 400, "faults")
		}
		if got := call(t, nil, "GET", base+"/_sim/faults", "", nil); got.body["fail_rate"] != 0.5 {
			t.Errorf("GET /_sim/faults after bad posts: got %s, want fail_rate 0.5 kept", got.raw)
		}
	})
}

func TestPagination(t *testing.T) {
	sim, base := start(t, Config{})
	vs := make([]VisitorRecord, 25)
	for i := range vs {
		vs[i].Name = "v" + formatInt(int64(i+1))
	}
	if _, err := sim.Seed(Seed{Visitors: vs}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query          string
		n              int
		first          string
		hasNext, hasPr bool
	}{
		{"", 10, "v1", true, false},
		{"&pageIndex=2", 10, "v11", true, true},
		{"&pageIndex=3", 5, "v21", false, true},
		{"&pageIndex=4", 0, "", false, true},
		{"&pageSize=100", 25, "v1", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			a := call(t, nil, "GET", base+"/v4/global/visitors"+site+tt.query, "", okAuth)
			var p struct {
				Visitors     []VisitorRecord `json:"visitors"`
				NextPage     *string         `json:"nextPage"`
				PreviousPage *string         `json:"previousPage"`
				Total        int             `json:"total"`
			}
			if err := json.Unmarshal(a.raw, &p); err != nil || a.status != 200 {
				t.Fatalf("got %d %s", a.status, a.raw)
			}
			if len(p.Visitors) != tt.n || p.Total != 25 || (p.NextPage != nil) != tt.hasNext || (p.PreviousPage != nil) != tt.hasPr {
				t.Fatalf("got %d items, total %d, next %v, previous %v; want %d, 25, %v, %v",
					len(p.Visitors), p.Total, p.NextPage != nil, p.PreviousPage != nil, tt.n, tt.hasNext, tt.hasPr)
			}
			if tt.n > 0 && p.Visitors[0].Name != tt.first {
				t.Errorf("first item: got %s, want %s", p.Visitors[0].Name, tt.first)
			}
			if p.NextPage != nil && !strings.Contains(*p.NextPage, "siteId=10000") {
				t.Errorf("nextPage %s drops the query", *p.NextPage)
			}
		})
	}
	for _, bad := range []string{"&pageIndex=0", "&pageIndex=x", "&pageSize=0"} {
		checkError(t, call(t, nil, "GET", base+"/v4/global/visitors"+site+bad, "", okAuth), 400, "Parameter 'page")
	}
}

func TestValidationAndNotFound(t *testing.T) {
	sim, base := start(t, Config{})
	a := call(t, nil, "POST", base+"/v4/ticketing/tickets"+site, `{"subject":"s"}`, okAuth)
	if a.status != 201 || a.body["id"] != float64(1001) {
		t.Fatalf("create ticket: got %d %s, want 201 with integer id 1001", a.status, a.raw)
	}
	if _, err := sim.Seed(Seed{Agents: []AgentRecord{{ID: "a1", Email: "a@example.com"}}, Contacts: []ContactRecord{{Name: "c", Identities: []ContactIdentityRecord{{"Email", "c@example.com"}}}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"ticket without subject", "POST", "ticketing/tickets", `{"priority":"high"}`, 400, "'subject' is required"},
		{"ticket bad priority", "POST", "ticketing/tickets", `{"subject":"s","priority":"asap"}`, 400, "'priority'"},
		{"ticket not json", "POST", "ticketing/tickets", `{`, 400, "not valid JSON"},
		{"unknown ticket", "GET", "ticketing/tickets/999", "", 404, "Ticket not found"},
		{"update unknown ticket", "PUT", "ticketing/tickets/999", `{"status":"resolved"}`, 404, "Ticket not found"},
		{"update bad status", "PUT", "ticketing/tickets/1001", `{"status":"done"}`, 400, "'status'"},
		{"update unknown tag", "PUT", "ticketing/tickets/1001", `{"tagIds":["nope"]}`, 400, "does not exist"},
		{"reply without ticket", "POST", "ticketing/messages", `{"body":"b"}`, 400, "'ticketId' is required"},
		{"reply without body", "POST", "ticketing/messages", `{"ticketId":1001}`, 400, "'body' is required"},
		{"reply to unknown ticket", "POST", "ticketing/messages", `{"ticketId":5,"body":"b"}`, 404, "Ticket not found"},
		{"reply with a bad id", "POST", "ticketing/messages", `{"ticketId":"abc","body":"b"}`, 400, "not a valid integer"},
		{"note without text", "POST", "ticketing/notes", `{"ticketId":"1001"}`, 400, "'text' is required"},
		{"tag without name", "POST", "ticketing/tags", `{}`, 400, "'name' is required"},
		{"contact bad identity", "POST", "contact/contacts", `{"contactIdentities":[{"contactIdentityType":"Pigeon","value":"x"}]}`, 400, "contactIdentityType"},
		{"contact taken identity", "POST", "contact/contacts", `{"contactIdentities":[{"contactIdentityType":"Email","value":"C@example.com"}]}`, 400, "already used"},
		{"update unknown contact", "PUT", "contact/contacts/nope", `{"name":"x"}`, 404, "Contact not found"},
		{"unknown chat", "GET", "livechat/chats/1", "", 404, "Chat not found"},
		{"search with timeFrom in the body", "POST", "livechat/chats:search", `{"timeFrom":"2025-03-17T09:00:00Z"}`, 400, "Parameter 'timeFrom' is not a body parameter"},
		{"search with a bad filter list", "POST", "livechat/chats:search", `{"filters":{"name":"time"}}`, 400, "'filters' must be a list"},
		{"search with a bad operator", "POST", "livechat/chats:search", `{"filters":[{"name":"departmentId","operator":"like","value":["x"]}]}`, 400, "operator must be is or ignored"},
		{"search with a bad page", "POST", "livechat/chats:search?pageIndex=0", `{}`, 400, "'pageIndex'"},
		{"attach by GUID", "POST", "livechat/chats/16c2cc3a-1b15-4b4f-9298-1cd04d6cec15:AttachToTicket", `{"ticketId":1001}`, 404, "the integer id"},
		{"ticket singular message", "POST", "ticketing/tickets", `{"subject":"s","message":{"body":"b"}}`, 400, "Parameter 'message' is not a ticket field"},
		{"ticket custom field by name", "POST", "ticketing/tickets", `{"subject":"s","customFields":{"Chat ID":"x"}}`, 400, "keyed by the id"},
		{"ticket system field", "POST", "ticketing/tickets", `{"subject":"s","customFields":{"0a1b2c3d-0002-4000-8000-000000000002":"high"}}`, 400, "system field"},
		{"ticket message type", "POST", "ticketing/tickets", `{"subject":"s","messages":[{"type":"markdown","body":"b"}]}`, 400, "'messages[0].type'"},
		{"update messages", "PUT", "ticketing/tickets/1001", `{"messages":[{"body":"b"}]}`, 400, "'messages' cannot be updated"},
		{"attach unknown chat", "POST", "livechat/chats/1:AttachToTicket", `{"ticketId":1001}`, 404, "Chat not found"},
		{"attach without ticket", "POST", "livechat/chats/1:AttachToTicket", `{}`, 400, "'ticketId' is required"},
		{"unknown chat action", "POST", "livechat/chats/1:Explode", `{}`, 404, "not found"},
		{"unknown offline message", "GET", "livechat/offlineMessages/77", "", 404, "Offline message not found"},
		{"unknown offline message GUID", "GET", "livechat/offlineMessages/58f738e3-86e5-4ce2-92da-f65ecc0d5318", "", 404, "Offline message not found"},
		{"agent bad status", "PUT", "livechat/agents/a1", `{"status":"asleep"}`, 400, "'status'"},
		{"unknown agent", "PUT", "livechat/agents/zz", `{"status":"away"}`, 404, "Agent not found"},
		{"webhook bad event", "POST", "livechat/webhooks", `{"event":"chatExplodes","targetUrl":"https://x.example"}`, 400, "'event'"},
		{"webhook bad url", "POST", "livechat/webhooks", `{"event":"chatEnds","targetUrl":"/relative"}`, 400, "'targetUrl'"},
		{"delete unknown webhook", "DELETE", "livechat/webhooks/69FAB2B6-1189-4B96-BD06-1CBDADBC1164", "", 404, "Webhook not found"},
		{"unknown path", "GET", "nothing/here", "", 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := base + "/v4/" + tt.path
			if strings.Contains(u, "?") {
				u += "&siteId=" + DefaultSiteID
			} else {
				u += site
			}
			checkError(t, call(t, nil, tt.method, u, tt.body, okAuth), tt.status, tt.msg)
		})
	}
}

func TestControlEndpoints(t *testing.T) {
	clock := newClock()
	_, base := start(t, Config{Now: clock.Now})
	a := call(t, nil, "POST", base+"/_sim/seed", `{"chats":[{"guid":"16c2cc3a-1b15-4b4f-9298-1cd04d6cec15","messages":"hi"}],"offlineMessages":[{"message":"call me"}]}`, nil)
	if a.status != 200 {
		t.Fatalf("seed: got %d %s", a.status, a.raw)
	}
	chatID := a.body["chats"].([]any)[0].(map[string]any)["id"].(float64)
	if got := call(t, nil, "GET", base+"/v4/livechat/chats/"+formatInt(int64(chatID))+site, "", okAuth); got.status != 200 || got.body["messages"] != "hi" {
		t.Errorf("seeded chat: got %d %s", got.status, got.raw)
	}
	call(t, nil, "POST", base+"/v4/ticketing/tickets"+site, `{"subject":"from test"}`, okAuth)

	var reqs []Request
	if err := json.Unmarshal(call(t, nil, "GET", base+"/_sim/requests", "", nil).raw, &reqs); err != nil {
		t.Fatal(err)
	}
	want := []Request{
		{Time: clock.Now(), ClientIP: "127.0.0.1", Method: "GET", Path: "/v4/livechat/chats/" + formatInt(int64(chatID)), Query: "siteId=10000", Status: 200},
		{Time: clock.Now(), ClientIP: "127.0.0.1", Method: "POST", Path: "/v4/ticketing/tickets", Query: "siteId=10000", Status: 201, Body: json.RawMessage(`{"subject":"from test"}`)},
	}
	if diff := cmp.Diff(want, reqs); diff != "" {
		t.Errorf("GET /_sim/requests (-want +got):\n%s", diff)
	}
	var st State
	if err := json.Unmarshal(call(t, nil, "GET", base+"/_sim/state", "", nil).raw, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Tickets) != 1 || st.Tickets[0].Subject != "from test" || len(st.Chats) != 1 || len(st.OfflineMessages) != 1 {
		t.Errorf("GET /_sim/state: got %+v", st)
	}
	checkError(t, call(t, nil, "POST", base+"/_sim/seed", `{"chats":[{"id":`+formatInt(int64(chatID))+`}]}`, nil), 400, "already exists")
	checkError(t, call(t, nil, "POST", base+"/_sim/seed", `{"chats":[{"guid":"16C2CC3A-1B15-4B4F-9298-1CD04D6CEC15"}]}`, nil), 400, "already exists")
	checkError(t, call(t, nil, "POST", base+"/_sim/seed", `{"robots":[]}`, nil), 400, "unknown field")
}

// TestRateLimitCountsTokenCalls: whether Comm100's per-IP limit counts the
// token endpoint's calls is not documented; the simulator counts them, the
// stricter reading, so a client that fetches tokens too often is caught.
func TestRateLimitCountsTokenCalls(t *testing.T) {
	clock := newClock()
	_, base := start(t, Config{Now: clock.Now, RateLimit: IPRateLimit{Calls: 2, Per: time.Minute}})
	if a := token(t, base, passwordForm()); a.status != http.StatusOK {
		t.Fatalf("token: got %d %s", a.status, a.raw)
	}
	if a := call(t, nil, "GET", base+"/v4/ticketing/tags"+site, "", okAuth); a.status != http.StatusOK {
		t.Fatalf("call: got %d %s", a.status, a.raw)
	}
	a := token(t, base, passwordForm())
	checkError(t, a, 403, "limit was exceeded")
}
