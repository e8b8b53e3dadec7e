package bus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
)

// serverLog passes the embedded NATS server's log to the bot's: its errors
// at error, its warnings at warn, its notices at debug (it is chatty when it
// starts). A statement the server repeats, such as a failed write for every
// message while the disk is full, is logged once per repeatWindow, the next
// line saying how many were held back. A fatal statement is also kept, so
// that a server that could not start says why.
type serverLog struct {
	log          *slog.Logger
	repeatWindow time.Duration
	now          func() time.Time

	mu      sync.Mutex
	repeats map[string]*repeat
	fatal   string
}

type repeat struct {
	last       time.Time
	suppressed int
}

func newServerLog(log *slog.Logger) *serverLog {
	return &serverLog{
		log:          log.With("component", "nats-server"),
		repeatWindow: time.Minute,
		now:          time.Now,
		repeats:      map[string]*repeat{},
	}
}

func (l *serverLog) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l *serverLog) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *serverLog) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l *serverLog) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l *serverLog) Tracef(format string, v ...any)  {}

// Fatalf is logged at error and remembered; the server stops by itself
// after a fatal statement, and must not take the bot down with os.Exit.
func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatal == "" {
		l.fatal = msg
	}
	l.mu.Unlock()
	l.log.Error(msg)
}

// fatalStatement is the first fatal statement, "" if none.
func (l *serverLog) fatalStatement() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *serverLog) emit(level slog.Level, format string, v []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	msg := fmt.Sprintf(format, v...)
	// The server's own rate-limited statements all come as "%s": tell them
	// apart by their words, not by the numbers in them.
	key := format
	if format == "%s" {
		key = strings.Map(func(r rune) rune {
			if unicode.IsDigit(r) {
				return -1
			}
			return r
		}, msg)
	}
	now := l.now()
	l.mu.Lock()
	r, seen := l.repeats[key]
	if seen && now.Sub(r.last) < l.repeatWindow {
		r.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := 0
	if seen {
		suppressed = r.suppressed
	}
	if len(l.repeats) > 1000 {
		for k, r := range l.repeats {
			if now.Sub(r.last) >= l.repeatWindow {
				delete(l.repeats, k)
			}
		}
	}
	l.repeats[key] = &repeat{last: now}
	l.mu.Unlock()
	if suppressed > 0 {
		l.log.Log(context.Background(), level, msg, "repeated_since_last_logged", suppressed)
		return
	}
	l.log.Log(context.Background(), level, msg)
}
