package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
)

// newLogger returns the logger: tint text (coloured on a terminal) or JSON.
func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	opts := &tint.Options{
		Level:      level,
		TimeFormat: time.TimeOnly,
		NoColor:    cfg.Format == "text" || !isTerminal(w),
	}
	if opts.NoColor {
		opts.ReplaceAttr = quoteLongValues
	}
	return slog.New(tint.NewTextHandler(w, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// quotedText is a log value that tint, writing without colour, quotes as
// it quotes a string with a space in it, without first stripping terminal
// escape sequences from it: tint does that rune by rune into a []rune, for
// every string and every map or slice it formats, and a dry run's params
// (a ticket's transcript) made it a tenth of the bytes the bot allocated
// per webhook. Only text with no escape byte in it is passed this way, so
// the line reads as it would have, but for one thing: tint's scan stops at
// the first byte that is not valid UTF-8, or at a U+FFFD, and drops the
// rest of the value; a quotedText is written whole, invalid bytes escaped.
type quotedText []byte

// minQuotedText is the shortest value worth a quotedText: shorter ones cost
// tint's scan less than the copy.
const minQuotedText = 64

// quoteLongValues is the text handler's ReplaceAttr without colour: long
// strings, and the maps and slices tint would format with %+v, that hold a
// space (tint would quote them) and no escape byte (its scan would remove
// nothing) become quotedText.
func quoteLongValues(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); len(s) >= minQuotedText && strings.IndexByte(s, ' ') >= 0 && strings.IndexByte(s, 0x1b) < 0 {
			a.Value = slog.AnyValue(quotedText(s))
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case map[string]any, []any:
			b := fmt.Appendf(nil, "%+v", v)
			if len(b) >= minQuotedText && bytes.IndexByte(b, ' ') >= 0 && bytes.IndexByte(b, 0x1b) < 0 {
				a.Value = slog.AnyValue(quotedText(b))
			} else {
				a.Value = slog.StringValue(string(b))
			}
		}
	}
	return a
}
