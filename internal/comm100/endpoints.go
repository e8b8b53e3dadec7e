package comm100

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Endpoint is where a Comm100 platform answers API and token calls.
type Endpoint struct {
	APIBase  string
	TokenURL string
}

var (
	v4Shard  = regexp.MustCompile(`^dash(\d+)\.comm100\.io$`)
	v3Portal = regexp.MustCompile(`^portal(\d+)\.comm100\.io$`)
	v4API    = regexp.MustCompile(`^api(\d+)\.comm100\.io$`)
)

// classicHosts are the control panels of the v2 platform (before 2020-04-26).
var classicHosts = []string{
	"hosted.comm100.com", "hosted3.comm100.com", "euportal.comm100.com",
	"ent1portal.comm100.com", "ent7portal.comm100.com", "enterpriseportal.comm100.com",
	"appportal.comm100.chat", "appportal.livelyhelp.chat",
}

// Endpoints derives the API base and token URL from a control-panel domain:
// dashNN.comm100.io (v4), portalN.comm100.io (v3) or one of the classic v2
// hosts. A scheme and a trailing slash are ignored.
func Endpoints(domain string) (Endpoint, error) {
	d := strings.TrimSpace(strings.ToLower(domain))
	d = strings.TrimPrefix(strings.TrimPrefix(d, "https://"), "http://")
	d = strings.TrimSuffix(d, "/")
	if m := v4Shard.FindStringSubmatch(d); m != nil {
		return Endpoint{
			APIBase:  "https://api" + m[1] + ".comm100.io/v4/",
			TokenURL: "https://" + d + "/oauth/token",
		}, nil
	}
	if m := v3Portal.FindStringSubmatch(d); m != nil {
		return Endpoint{
			APIBase:  "https://api" + m[1] + ".comm100.io/api/v3/",
			TokenURL: "https://" + d + "/oauth/token",
		}, nil
	}
	if slices.Contains(classicHosts, d) {
		return Endpoint{
			APIBase:  "https://" + d + "/api/v2/",
			TokenURL: "https://" + d + "/oauth/token",
		}, nil
	}
	return Endpoint{}, fmt.Errorf("comm100.domain %q: unknown control-panel domain; known: dashNN.comm100.io (v4), portalN.comm100.io (v3) and %s",
		domain, strings.Join(classicHosts, ", "))
}

// tokenURLFor guesses the token endpoint from an API base when only
// comm100.base_url is set: apiNN.comm100.io/v4/ answers tokens at
// dashNN.comm100.io, every other host (classic hosts, the simulator) at its
// own /oauth/token.
func tokenURLFor(base *url.URL) string {
	if m := v4API.FindStringSubmatch(strings.ToLower(base.Hostname())); m != nil && strings.HasPrefix(base.Path, "/v4/") {
		return "https://dash" + m[1] + ".comm100.io/oauth/token"
	}
	u := url.URL{Scheme: base.Scheme, Host: base.Host, Path: "/oauth/token"}
	return u.String()
}
