package main

// configDocs describes every config key that is also a flag; the flags'
// help is made of it and of the defaults that Config.defaults sets.
// TestConfigFlagsAreDocumented keeps it in step with Config, and the
// README's configuration table with both.
var configDocs = map[string]string{
	"log.level":  "log level: debug, info, warn or error",
	"log.format": "log format: auto (coloured text on a terminal), text or json",

	"http.addr":                "address of the webhook listener (POST /hooks/...)",
	"http.admin_addr":          "address of the admin listener (/healthz, /readyz, /metrics, POST /-/reload, /debug/pprof/); keep it off the public network",
	"http.max_body_bytes":      "largest webhook body; larger ones get 413",
	"http.max_in_flight_bytes": "bodies of the webhooks handled at once (declared sizes; at least 4 KiB each); one more gets 503 with Retry-After",
	"http.max_header_bytes":    "largest request line and headers; larger requests get 431",
	"http.read_header_timeout": "bound on reading a request's line and headers",
	"http.read_timeout":        "bound on reading a whole request",
	"http.write_timeout":       "bound on writing a whole answer",

	"nats.url":            "external NATS server or cluster; empty runs an embedded one",
	"nats.store_dir":      "JetStream files of the embedded NATS server",
	"nats.listen":         "client address of the embedded NATS server",
	"nats.replicas":       "replicas of every stream, bucket and consumer the bot creates (1 to 5; 3 for a 3-node cluster)",
	"nats.dedup_window":   "how long a repeated event id is recognised; raised to cover every source's signature tolerance",
	"nats.events_max_age": "how long events are kept",
	"nats.sync":           "when the embedded server syncs to disk: always (before every acknowledgement) or an interval such as 1s",
	"nats.max_store":      "bytes the embedded server's store may take; 0: three quarters of the disk space free at start",

	"rules.dir":      "directory of the rule files",
	"rules.watch":    "reload the rules when a file under rules.dir changes",
	"rules.debounce": "wait this long after the last change before reloading",

	"comm100.domain":                 "Comm100 control-panel host (dash11.comm100.io, ...); derives the API base and the token URL",
	"comm100.base_url":               "API base override, e.g. the simulator's http://127.0.0.1:8089/v4/ (default derived from comm100.domain)",
	"comm100.token_url":              "OAuth token endpoint override (default derived)",
	"comm100.site_id":                "Comm100 site id; without credentials actions run dry",
	"comm100.email":                  "email of the agent whose credentials are used",
	"comm100.client_id":              "OAuth client id, with comm100.password (set in the config file or BOT_COMM100__PASSWORD)",
	"comm100.base64_bodies":          "send ticket message bodies and note texts base64-encoded, for sites whose Comm100 firewall blocks plain text",
	"comm100.timeout":                "bound on one Comm100 call",
	"comm100.rate_limit.calls":       "Comm100 budget: never more than this many calls in any window of comm100.rate_limit.per",
	"comm100.rate_limit.per":         "window of the Comm100 budget",
	"comm100.rate_limit.shared":      "one budget, kept in NATS, for every replica that names the same comm100.rate_limit.budget",
	"comm100.rate_limit.budget":      "name of the Comm100 budget in NATS (default the site id; unshared on an external NATS, the host name is appended)",
	"dispatch.workers":               "jobs carried out at once in each of the pool's two lanes (Comm100 actions, the others; http.request jobs take all but one, one host half of those)",
	"dispatch.max_attempts":          "cap on the attempts of one job; 0 = until dispatch.retry_for",
	"dispatch.retry_for":             "retry horizon of a failing job",
	"dispatch.retry_in_process":      "how long transient failures are retried before the job goes back to JetStream",
	"dispatch.attempt_timeout":       "bound on one http.request call, from the moment its host's limiter lets it go",
	"dispatch.http_rate_limit.calls": "budget of http.request calls per host, per dispatch.http_rate_limit.per",
	"dispatch.http_rate_limit.per":   "window of the http.request budget",
	"dispatch.rate_limit_pause":      "pause of the whole pool after a rate-limit answer without Retry-After",
	"dispatch.dry_run":               "log every job instead of carrying it out",
}
