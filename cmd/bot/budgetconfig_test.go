package main

import (
	"errors"
	"testing"
)

func TestBudgetConfigNamesTheBudget(t *testing.T) {
	host := func() (string, error) { return "bot-7f9c.pod.local", nil }
	noHost := func() (string, error) { return "", errors.New("no host name") }
	tests := []struct {
		name     string
		yaml     string
		hostname func() (string, error)
		want     string
		err      string
	}{
		{"embedded, unshared: the site id", `comm100: {site_id: "10000", email: a@example.com, api_key: k, domain: dash11.comm100.io}`, host, "10000", ""},
		{"external, shared: the site id", `{nats: {url: "nats://n:4222"}, comm100: {site_id: "10000", email: a@example.com, api_key: k, domain: dash11.comm100.io, rate_limit: {shared: true}}}`, noHost, "10000", ""},
		{"external, shared, named", `{nats: {url: "nats://n:4222"}, comm100: {site_id: "10000", email: a@example.com, api_key: k, domain: dash11.comm100.io, rate_limit: {shared: true, budget: egress-a}}}`, host, "egress-a", ""},
		{"external, unshared: per host", `{nats: {url: "nats://n:4222"}, comm100: {site_id: "10000", email: a@example.com, api_key: k, domain: dash11.comm100.io}}`, host, "10000.bot-7f9c_pod_local", ""},
		{"external, unshared, no host name", `{nats: {url: "nats://n:4222"}, comm100: {site_id: "10000", email: a@example.com, api_key: k, domain: dash11.comm100.io}}`, noHost, "",
			"comm100.rate_limit: an unshared budget on an external NATS is named after the host: no host name"},
		{"bad name", `comm100: {site_id: "10000", email: a@example.com, api_key: k, domain: dash11.comm100.io, rate_limit: {budget: "egress a"}}`, host, "",
			`comm100.rate_limit.budget: budget name "egress a": want letters, digits, '-', '_' or '=' (and '.' between them)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadTestConfig(t, tt.yaml)
			if err != nil {
				t.Fatal(err)
			}
			bc, err := budgetConfig(cfg, tt.hostname)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err || (err == nil && bc.Name != tt.want) {
				t.Errorf("got name %q, error %q; want %q, %q", bc.Name, got, tt.want, tt.err)
			}
			if err == nil && (bc.Calls != 300 || bc.Per.String() != "5m0s" || bc.CallTimeout.String() != "30s" || bc.Replicas != 1) {
				t.Errorf("got %+v, want the defaults of comm100.rate_limit, comm100.timeout and nats.replicas", bc)
			}
		})
	}
}
