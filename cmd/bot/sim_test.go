package main

import (
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    comm100test.IPRateLimit
		wantErr bool
	}{
		{in: "60/10s", want: comm100test.IPRateLimit{Calls: 60, Per: 10 * time.Second}},
		{in: "300/5m", want: comm100test.IPRateLimit{Calls: 300, Per: 5 * time.Minute}},
		{in: "100/m", want: comm100test.IPRateLimit{Calls: 100, Per: time.Minute}},
		{in: "off", want: comm100test.IPRateLimit{Calls: -1}},
		{in: "60", wantErr: true},
		{in: "0/1s", wantErr: true},
		{in: "x/1s", wantErr: true},
		{in: "60/soon", wantErr: true},
		{in: "60/-1s", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRateLimit(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
