package bus

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://bot:s3cret@nats:4222", "nats://nats:4222"},
		{"nats://tok3n@a:4222,nats://u:p@b:4222", "nats://a:4222,nats://b:4222"},
		{"nats://u:p@[::1", "<unparsable URL>"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
