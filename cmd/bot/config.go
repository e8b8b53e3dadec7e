package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/ingest"
	"github.com/comm100bot/bot/internal/secret"
)

// Config is the whole configuration of `bot serve`. Field comments are the
// user documentation; the README's configuration table follows them.
type Config struct {
	Log      LogConfig                      `koanf:"log"`
	HTTP     HTTPConfig                     `koanf:"http"`
	NATS     bus.Config                     `koanf:"nats"`
	Rules    RulesConfig                    `koanf:"rules"`
	Comm100  comm100.Config                 `koanf:"comm100"`
	Dispatch actions.Config                 `koanf:"dispatch"`
	Sources  map[string]ingest.SourceConfig `koanf:"sources"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info (default), warn or error.
	Level string `koanf:"level"`
	// Format is "auto" (default: coloured text on a terminal, plain text
	// otherwise), "text" or "json".
	Format string `koanf:"format"`
}

// HTTPConfig configures the two HTTP listeners: the webhook listener, which
// answers only POST /hooks/..., and the admin listener (health, readiness,
// metrics, reload).
type HTTPConfig struct {
	// Addr of the webhook listener. Default ":8080".
	Addr string `koanf:"addr"`
	// AdminAddr of the admin listener: GET /healthz, GET /readyz, GET
	// /metrics, POST /-/reload, GET /debug/pprof/. Default "127.0.0.1:8081"
	// (this host only).
	AdminAddr string `koanf:"admin_addr"`
	// AdminToken, when set, must arrive as "Authorization: Bearer <token>" on
	// GET /metrics, POST /-/reload and GET /debug/pprof/ (health and
	// readiness stay open, for probes). Config file or BOT_HTTP__ADMIN_TOKEN only. Default empty.
	AdminToken secret.String `koanf:"admin_token"`
	// MaxBodyBytes is the largest webhook body accepted. Default 1048576 (1 MiB).
	MaxBodyBytes int64 `koanf:"max_body_bytes"`
	// MaxInFlightBytes bounds the bodies of the webhooks handled at once;
	// one more gets 503. Default 67108864 (64 MiB), or MaxBodyBytes if
	// larger.
	MaxInFlightBytes int64 `koanf:"max_in_flight_bytes"`
	// MaxHeaderBytes bounds the request line and headers; larger requests
	// get 431. Default 65536 (64 KiB).
	MaxHeaderBytes int64 `koanf:"max_header_bytes"`
	// ReadHeaderTimeout bounds reading the request line and headers. Default 5s.
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request. Default 10s.
	ReadTimeout time.Duration `koanf:"read_timeout"`
	// WriteTimeout bounds writing a whole answer. Default 30s.
	WriteTimeout time.Duration `koanf:"write_timeout"`
}

// RulesConfig says where the rules are.
type RulesConfig struct {
	// Dir holds the rule files. Default "./rules".
	Dir string `koanf:"dir"`
	// Watch reloads the rules when a file in Dir changes. Default true.
	Watch *bool `koanf:"watch"`
	// Debounce waits this long after the last change before reloading. Default 300ms.
	Debounce time.Duration `koanf:"debounce"`
}

func (c *Config) defaults() {
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "auto"
	}
	if c.HTTP.Addr == "" {
		c.HTTP.Addr = ":8080"
	}
	if c.HTTP.AdminAddr == "" {
		c.HTTP.AdminAddr = "127.0.0.1:8081"
	}
	if c.HTTP.MaxBodyBytes == 0 {
		c.HTTP.MaxBodyBytes = 1 << 20
	}
	if c.HTTP.MaxInFlightBytes == 0 {
		c.HTTP.MaxInFlightBytes = max(64<<20, c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.MaxHeaderBytes == 0 {
		c.HTTP.MaxHeaderBytes = 64 << 10
	}
	if c.HTTP.ReadHeaderTimeout == 0 {
		c.HTTP.ReadHeaderTimeout = 5 * time.Second
	}
	if c.HTTP.ReadTimeout == 0 {
		c.HTTP.ReadTimeout = 10 * time.Second
	}
	if c.HTTP.WriteTimeout == 0 {
		c.HTTP.WriteTimeout = 30 * time.Second
	}
	if c.Rules.Dir == "" {
		c.Rules.Dir = "./rules"
	}
	if c.Rules.Watch == nil {
		watch := true
		c.Rules.Watch = &watch
	}
	if c.Rules.Debounce == 0 {
		c.Rules.Debounce = 300 * time.Millisecond
	}
	if len(c.Sources) == 0 {
		c.Sources = map[string]ingest.SourceConfig{"comm100": {Kind: ingest.KindComm100}}
	}
	c.NATS.Defaults()
	c.Comm100.Defaults()
	c.Dispatch.Defaults()
}

func (c *Config) validate() error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "text", "json":
	default:
		return fmt.Errorf("log.format: want auto, text or json, got %q", c.Log.Format)
	}
	if c.HTTP.MaxBodyBytes < 1 {
		return fmt.Errorf("http.max_body_bytes: want a positive number, got %d", c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.MaxInFlightBytes < c.HTTP.MaxBodyBytes {
		return fmt.Errorf("http.max_in_flight_bytes: want at least http.max_body_bytes (%d), got %d", c.HTTP.MaxBodyBytes, c.HTTP.MaxInFlightBytes)
	}
	if c.HTTP.MaxHeaderBytes < 1 {
		return fmt.Errorf("http.max_header_bytes: want a positive number, got %d", c.HTTP.MaxHeaderBytes)
	}
	for key, d := range map[string]time.Duration{"http.read_header_timeout": c.HTTP.ReadHeaderTimeout,
		"http.read_timeout": c.HTTP.ReadTimeout, "http.write_timeout": c.HTTP.WriteTimeout} {
		if d < 0 {
			return fmt.Errorf("%s: want a positive duration, got %s", key, d)
		}
	}
	if c.HTTP.AdminAddr == c.HTTP.Addr && !strings.HasSuffix(c.HTTP.Addr, ":0") {
		return fmt.Errorf("http.admin_addr: must differ from http.addr (%s): webhooks and the admin endpoints have listeners of their own", c.HTTP.Addr)
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		return fmt.Errorf("nats.replicas: want 1 to 5, got %d", c.NATS.Replicas)
	}
	if err := c.NATS.Validate(); err != nil {
		return err
	}
	if c.Comm100.HasCredentials() {
		if err := c.Comm100.Validate(); err != nil {
			return err
		}
	} else if c.Comm100.Domain != "" || c.Comm100.BaseURL != "" {
		if _, err := c.Comm100.APIBase(); err != nil {
			return err
		}
	}
	// Sources are compiled here too, so that a bad expression or signature
	// setting stops the bot at config load, naming its key.
	for _, name := range slices.Sorted(maps.Keys(c.Sources)) {
		if err := c.Sources[name].Validate(name); err != nil {
			return err
		}
	}
	return c.Dispatch.Validate()
}

// coverReplays raises nats.dedup_window to the longest replay window of the
// sources, since a signed request whose timestamp is still within its
// tolerance passes its check again and must be recognised as a duplicate.
// It returns the source that raised it, or "".
func (c *Config) coverReplays() (raisedFor string) {
	for _, name := range slices.Sorted(maps.Keys(c.Sources)) {
		if w := c.Sources[name].ReplayWindow(); w > c.NATS.DedupWindow {
			c.NATS.DedupWindow = w
			raisedFor = name
		}
	}
	return raisedFor
}

// configFlags adds --config and a flag for each config key named in keys, or
// for every key when keys is empty, named by its path (--http.addr,
// --comm100.rate_limit.calls), with its description and default. Secrets and
// the keys of sources are never flags: they come from the config file or the
// environment, so that they do not show in process lists or shell history.
func configFlags(fs *pflag.FlagSet, keys ...string) {
	fs.String("config", "", "config file (default bot.yaml if present)")
	var defaults Config
	defaults.defaults()
	for _, k := range flagKeys() {
		if len(keys) > 0 && !slices.Contains(keys, k.path) {
			continue
		}
		desc := configDocs[k.path]
		def := configValue(reflect.ValueOf(defaults), k.path)
		switch {
		case k.typ == reflect.TypeFor[time.Duration]():
			fs.Duration(k.path, time.Duration(def.Int()), desc)
		case k.typ.Kind() == reflect.String:
			fs.String(k.path, def.String(), desc)
		case k.typ.Kind() == reflect.Int || k.typ.Kind() == reflect.Int64:
			fs.Int64(k.path, def.Int(), desc)
		case k.typ.Kind() == reflect.Bool:
			fs.Bool(k.path, def.Bool(), desc)
		}
		_ = fs.SetAnnotation(k.path, configKeyFlag, nil)
	}
}

// configKeyFlag marks the flags that configFlags made: loadConfig reads
// those, and leaves a command's own flags (--all, --since) to it.
const configKeyFlag = "config-key"

// flagKeys are the config keys that can be set by flags: every scalar key
// but the secrets and the keys of sources.
func flagKeys() []configKey {
	var out []configKey
	for _, k := range configKeys(reflect.TypeFor[Config](), "") {
		if k.isMap || strings.Contains(k.path, "*") || k.typ == reflect.TypeFor[secret.String]() {
			continue
		}
		switch k.typ.Kind() {
		case reflect.String, reflect.Int, reflect.Int64, reflect.Bool:
			out = append(out, k)
		}
	}
	return out
}

// configValue is the value at a key path of a config struct; pointers are
// followed (nil gives the zero value).
func configValue(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v = reflect.Zero(v.Type().Elem())
			} else {
				v = v.Elem()
			}
		}
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).Tag.Get("koanf") == name {
				v = v.Field(i)
				break
			}
		}
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return reflect.Zero(v.Type().Elem())
		}
		v = v.Elem()
	}
	return v
}

// loadConfig reads the config file, then BOT_ environment variables, then
// flags, each overriding the one before, and refuses unknown keys.
func loadConfig(fs *pflag.FlagSet, environ []string) (*Config, error) {
	k := koanf.New(".")
	path, _ := fs.GetString("config")
	explicit := path != ""
	if !explicit {
		path = "bot.yaml"
	}
	if _, err := os.Stat(path); err == nil || explicit {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	envKeys := map[string]string{}
	err := k.Load(env.Provider(".", env.Opt{
		Prefix:      "BOT_",
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "BOT_")), "__", ".")
			envKeys[key] = name
			return key, v
		},
	}), nil)
	if err != nil {
		return nil, fmt.Errorf("config from environment: %w", err)
	}
	if err := k.Load(posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
		if _, isKey := f.Annotations[configKeyFlag]; !isKey || !f.Changed {
			return "", nil
		}
		return f.Name, posflag.FlagVal(fs, f)
	}), nil); err != nil {
		return nil, fmt.Errorf("config from flags: %w", err)
	}
	// A section with every line commented out (`comm100:` alone) is null,
	// or an empty map: empty, not an unknown key.
	for _, key := range k.Keys() {
		if v := k.Get(key); v == nil || isEmptyMap(v) {
			k.Delete(key)
		}
	}
	if err := checkKeys(k.Keys(), envKeys); err != nil {
		return nil, err
	}
	var cfg Config
	err = k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				refuseBareDurations,
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","),
			),
			WeaklyTypedInput: true,
			Result:           &cfg,
			TagName:          "koanf",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", cleanDecodeError(err))
	}
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &cfg, nil
}

// checkPartialCredentials refuses, for a command that calls Comm100, some
// of its credentials without the others: most likely a variable missing
// in one deployment, and running dry would log every job and do none.
func checkPartialCredentials(c *Config) error {
	missing := c.Comm100.MissingCredentials()
	if len(missing) == 0 || !c.Comm100.AnyCredential() || c.Dispatch.DryRun {
		return nil
	}
	return fmt.Errorf("config: %s not set, while other Comm100 credentials are: set them all, none (to run dry), or dispatch.dry_run: true",
		strings.Join(missing, " and "))
}

// refuseBareDurations refuses a number given for a duration: YAML's
// `per: 300` would otherwise be 300 nanoseconds, taken without a word.
func refuseBareDurations(from, to reflect.Type, data any) (any, error) {
	if d := reflect.TypeFor[time.Duration](); to != d || from == d {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if v := reflect.ValueOf(data); !v.IsZero() {
			return nil, fmt.Errorf("%v is a number; write a duration with its unit, such as 300s or 5m", data)
		}
	}
	return data, nil
}

// cleanDecodeError keeps mapstructure's message (which names the key) but
// drops its "decoding failed due to..." preamble.
func cleanDecodeError(err error) error {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		return fmt.Errorf("%s: %v", de.Name(), de.Unwrap())
	}
	msg := err.Error()
	if i := strings.Index(msg, "error(s) decoding:\n\n* "); i >= 0 {
		msg = strings.ReplaceAll(msg[i+len("error(s) decoding:\n\n* "):], "\n* ", "; ")
	}
	return errors.New(msg)
}

type configKey struct {
	path  string
	typ   reflect.Type
	isMap bool
}

// configKeys lists the key paths of a config struct type; a map contributes
// "<path>.*" and its element's keys below it.
func configKeys(t reflect.Type, prefix string) []configKey {
	var out []configKey
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		path := prefix + tag
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]():
			out = append(out, configKeys(ft, path+".")...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			out = append(out, configKey{path: path + ".*", typ: ft, isMap: true})
			out = append(out, configKeys(ft.Elem(), path+".*.")...)
		default:
			out = append(out, configKey{path: path, typ: ft})
		}
	}
	return out
}

func isEmptyMap(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

// checkKeys refuses any key that Config does not have, naming it and, for
// keys from the environment, the variable it came from.
func checkKeys(keys []string, envKeys map[string]string) error {
	known := configKeys(reflect.TypeFor[Config](), "")
	var unknown []string
	for _, k := range keys {
		if !keyKnown(k, known) {
			msg := fmt.Sprintf("unknown config key %q", k)
			if name, ok := envKeys[k]; ok {
				msg += fmt.Sprintf(" (from environment variable %s)", name)
			}
			if hint := nearKeys(k, known); hint != "" {
				msg += "; known keys here: " + hint
			}
			unknown = append(unknown, msg)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return errors.New("config: " + strings.Join(unknown, "\nconfig: "))
	}
	return nil
}

func keyKnown(k string, known []configKey) bool {
	ks := strings.Split(k, ".")
	for _, c := range known {
		if c.isMap {
			continue
		}
		cs := strings.Split(c.path, ".")
		if len(cs) != len(ks) {
			continue
		}
		ok := true
		for i := range cs {
			if cs[i] != "*" && cs[i] != ks[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// nearKeys lists the known keys that share k's parent, to help fix a typo.
func nearKeys(k string, known []configKey) string {
	parent := ""
	if i := strings.LastIndex(k, "."); i >= 0 {
		parent = k[:i+1]
	}
	var out []string
	for _, c := range known {
		if c.isMap {
			continue
		}
		p := c.path
		if parent == "" {
			p, _, _ = strings.Cut(p, ".")
		} else if !strings.HasPrefix(p, parent) {
			continue
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}
