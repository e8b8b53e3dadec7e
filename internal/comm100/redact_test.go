package comm100

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSecretsNeverPrint logs and prints configs, clients and the errors of
// failing calls in every common way, and looks for the API key, the
// password and the access token in the output.
func TestSecretsNeverPrint(t *testing.T) {
	const apiKey, password = "key-4f7e9a", "pass-8c2d1b"

	// A token endpoint and an API that echo what they were sent, as a
	// careless server might.
	var issued string
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.URL.Path == "/oauth/token" {
			if r.PostForm.Get("password") != password {
				http.Error(w, `{"code":401000,"message":"bad password `+r.PostForm.Get("password")+`"}`, http.StatusUnauthorized)
				return
			}
			issued = "tok-" + strings.Repeat("z", 20)
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":3600}`, issued)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"code":403000,"message":"denied for %s / %s"}`, r.Header.Get("Authorization"), r.URL.RawQuery)
	})
	hs := httptest.NewServer(echo)
	t.Cleanup(hs.Close)

	cases := []struct {
		name string
		cfg  Config
	}{
		{"api key", Config{BaseURL: hs.URL + "/v4/", SiteID: "1", Email: "a@b.c", APIKey: apiKey}},
		{"oauth", Config{BaseURL: hs.URL + "/v4/", SiteID: "1", Email: "a@b.c", Password: password, ClientID: "c"}},
		{"oauth, wrong password echoed", Config{BaseURL: hs.URL + "/v4/", SiteID: "1", Email: "a@b.c", Password: password + "x", ClientID: "c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := New(tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, callErr := c.CreateTicket(t.Context(), NewTicket{Subject: "s"})
			if callErr == nil {
				t.Fatal("want the echoing server's error")
			}
			for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
				log := slog.New(h)
				log.Info("config", "cfg", tc.cfg, "api_key", tc.cfg.APIKey, "password", tc.cfg.Password)
				log.Info("client", "client", c)
				log.Error("call failed", "err", callErr)
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				fmt.Fprintf(&out, verb+"\n", tc.cfg)
				fmt.Fprintf(&out, verb+"\n", c)
				fmt.Fprintf(&out, verb+"\n", callErr)
			}
			if !strings.Contains(out.String(), "<redacted>") {
				t.Errorf("output shows no <redacted> at all; the test is not looking at secrets:\n%s", out.String())
			}
			for _, s := range []string{apiKey, password, issued} {
				if s != "" && strings.Contains(out.String(), s) {
					t.Errorf("output holds secret %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// TestSecretsNotInSimulatorRecord: what the simulator records of a session
// (queries and JSON bodies) holds no credential.
func TestSecretsNotInSimulatorRecord(t *testing.T) {
	e := newEnv(t, envOpt{oauth: true})
	if _, err := e.client.CreateTicket(t.Context(), NewTicket{Subject: "s"}); err != nil {
		t.Fatal(err)
	}
	_, password, _ := e.sim.OAuth()
	access := e.client.tokens.secrets()[0]
	for _, r := range e.sim.Requests() {
		rec := fmt.Sprintf("%+v %s", r, r.Body)
		if strings.Contains(rec, password) || strings.Contains(rec, access) {
			t.Errorf("recorded call holds a secret: %s", rec)
		}
	}
	if access == "" {
		t.Fatal("no token was fetched")
	}
}
