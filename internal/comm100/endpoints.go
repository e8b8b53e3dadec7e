package comm100

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Endpoint is where a Comm100 platform answers API and token calls.
type Endpoint struct {
	APIBase  string
	TokenURL string
}

var v4Shard = regexp.MustCompile(`^dash(\d+)\.comm100\.io$`)

// classicHosts are the control panels of the v2 platform (before 2020-04-26).
var classicHosts = []string{
	"hosted.comm100.com", "hosted3.comm100.com", "euportal.comm100.com",
	"ent1portal.comm100.com", "ent7portal.comm100.com", "enterpriseportal.comm100.com",
	"appportal.comm100.chat", "appportal.livelyhelp.chat",
}

// Endpoints derives the API base and token URL from a control-panel domain.
func Endpoints(domain string) (Endpoint, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(domain, "https://"), "http://"), "/"))
	if m := v4Shard.FindStringSubmatch(d); m != nil {
		return Endpoint{
			APIBase:  "https://api" + m[1] + ".comm100.io/v4/",
			TokenURL: "https://" + d + "/oauth/token",
		}, nil
	}
	if slices.Contains(classicHosts, d) {
		return Endpoint{
			APIBase:  "https://" + d + "/api/v2/",
			TokenURL: "https://" + d + "/oauth/token",
		}, nil
	}
	return Endpoint{}, fmt.Errorf("comm100.domain %q: unknown control-panel domain; known: dashNN.comm100.io (v4) and %s",
		domain, strings.Join(classicHosts, ", "))
}
