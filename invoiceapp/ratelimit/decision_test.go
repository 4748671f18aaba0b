package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestWriteHeaders(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want map[string]string // "" = header absent
	}{
		{
			name: "allowed",
			d:    Decision{Allowed: true, Limit: 100, Remaining: 99, ResetAfter: time.Second},
			want: map[string]string{HeaderLimit: "100", HeaderRemaining: "99", HeaderReset: "1", HeaderRetryAfter: ""},
		},
		{
			name: "allowed, reset rounded up",
			d:    Decision{Allowed: true, Limit: 1000, Remaining: 0, ResetAfter: 3599400 * time.Millisecond},
			want: map[string]string{HeaderLimit: "1000", HeaderRemaining: "0", HeaderReset: "3600", HeaderRetryAfter: ""},
		},
		{
			name: "limited, whole seconds",
			d:    Decision{Limit: 100, RetryAfter: 2 * time.Second, ResetAfter: 100 * time.Second},
			want: map[string]string{HeaderLimit: "100", HeaderRemaining: "0", HeaderReset: "100", HeaderRetryAfter: "2"},
		},
		{
			name: "limited, fraction rounds up",
			d:    Decision{Limit: 2000, RetryAfter: 1001 * time.Millisecond, ResetAfter: 120*time.Second + time.Microsecond},
			want: map[string]string{HeaderLimit: "2000", HeaderRemaining: "0", HeaderReset: "121", HeaderRetryAfter: "2"},
		},
		{
			name: "limited, tiny wait is still 1 second",
			d:    Decision{Limit: 10000, RetryAfter: time.Microsecond, ResetAfter: time.Microsecond},
			want: map[string]string{HeaderLimit: "10000", HeaderRemaining: "0", HeaderReset: "1", HeaderRetryAfter: "1"},
		},
		{
			name: "limited, zero wait is still 1 second",
			d:    Decision{Limit: 100},
			want: map[string]string{HeaderLimit: "100", HeaderRemaining: "0", HeaderReset: "0", HeaderRetryAfter: "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(HeaderRetryAfter, "stale") // a refused decision overwrites it
			if tt.d.Allowed {
				h = http.Header{}
			}
			tt.d.WriteHeaders(h)
			for k, want := range tt.want {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if len(h) != 3+b2i(!tt.d.Allowed) {
				t.Errorf("headers = %v, want exactly %d", h, 3+b2i(!tt.d.Allowed))
			}
		})
	}
}
