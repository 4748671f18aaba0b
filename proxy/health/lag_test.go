package health

import (
	"testing"
	"time"
)

func TestReplicaLag(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// A writer checked every 250ms, inserting 0x100 bytes of WAL between checks.
	samples := []lsnSample{
		{start: at(0), writeLSN: 0x1000, insertLSN: 0x1000},
		{start: at(250), writeLSN: 0x1100, insertLSN: 0x1100},
		{start: at(500), writeLSN: 0x1200, insertLSN: 0x1200},
		{start: at(750), writeLSN: 0x12F0, insertLSN: 0x1300},
	}
	replica := func(lsn uint64, age time.Duration, hasAge bool, observedMS int) *endpointState {
		return &endpointState{lsn: lsn, replayAge: age, hasReplayAge: hasAge, observedAt: at(observedMS)}
	}
	tests := []struct {
		name      string
		st        *endpointState
		samples   []lsnSample
		want      time.Duration
		wantKnown bool
	}{
		{
			name:    "caught up with the writer's write position: no lag, however old the last transaction",
			st:      replica(0x12F0, time.Hour, true, 760),
			samples: samples, want: 0, wantKnown: true,
		},
		{
			name:    "ahead of the writer's latest observed position",
			st:      replica(0x1400, 0, false, 760),
			samples: samples, want: 0, wantKnown: true,
		},
		{
			name:    "idle writer wrote a stray record: the newest replayed sample bounds the lag",
			st:      replica(0x1200, time.Hour, true, 760),
			samples: samples, want: 260 * time.Millisecond, wantKnown: true,
		},
		{
			name:    "steady writes: the replay age is the smaller bound",
			st:      replica(0x12A0, 40*time.Millisecond, true, 760),
			samples: samples, want: 40 * time.Millisecond, wantKnown: true,
		},
		{
			name:    "apply delay: both bounds say about three seconds",
			st:      replica(0x1000, 3*time.Second, true, 3100),
			samples: samples, want: 3 * time.Second, wantKnown: true,
		},
		{
			name:    "behind every sample, no replay timestamp: unknown",
			st:      replica(0x0F00, 0, false, 760),
			samples: samples, wantKnown: false,
		},
		{
			name:    "behind every sample: the replay age alone",
			st:      replica(0x0F00, 5*time.Second, true, 760),
			samples: samples, want: 5 * time.Second, wantKnown: true,
		},
		{
			name:    "no writer sample yet: the replay age alone",
			st:      replica(0x0F00, 20*time.Millisecond, true, 760),
			samples: nil, want: 20 * time.Millisecond, wantKnown: true,
		},
		{
			name:    "no writer sample and no replay timestamp: unknown",
			st:      replica(0x0F00, 0, false, 760),
			samples: nil, wantKnown: false,
		},
		{
			name:    "cut off from the writer long ago: lag grows with time",
			st:      replica(0x1000, 0, false, 10_000),
			samples: samples, want: 10 * time.Second, wantKnown: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, known := replicaLag(tt.st, tt.samples)
			if known != tt.wantKnown || (known && got != tt.want) {
				t.Errorf("replicaLag = %v, %v; want %v, %v", got, known, tt.want, tt.wantKnown)
			}
		})
	}
}

func TestReceiving(t *testing.T) {
	t0 := time.Now()
	samples := []lsnSample{{start: t0, writeLSN: 0x2000, insertLSN: 0x2000}}
	tests := []struct {
		name       string
		receiveLSN uint64
		advanced   time.Duration // before now
		samples    []lsnSample
		want       bool
	}{
		{name: "received all the writer wrote, long ago", receiveLSN: 0x2000, advanced: time.Hour, samples: samples, want: true},
		{name: "behind, moved recently", receiveLSN: 0x1000, advanced: 100 * time.Millisecond, samples: samples, want: true},
		{name: "behind and stuck", receiveLSN: 0x1000, advanced: 5 * time.Second, samples: samples, want: false},
		{name: "no writer known, stuck", receiveLSN: 0x1000, advanced: 5 * time.Second, want: false},
	}
	for _, tt := range tests {
		st := &endpointState{receiveLSN: tt.receiveLSN, receiveAdvancedAt: t0.Add(-tt.advanced)}
		if got := receiving(st, tt.samples, t0, time.Second); got != tt.want {
			t.Errorf("%s: receiving = %v, want %v", tt.name, got, tt.want)
		}
	}
}
