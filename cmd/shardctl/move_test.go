package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/shardmap"
	"github.com/shardwire/shardwire/shardmap/rebalance"
)

func TestMoveFlagErrors(t *testing.T) {
	t.Setenv(envCatalog, "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"move", "--shard", "16", "--to", "g1"}, "--shard 16: give a shard 0..15"},
		{[]string{"move", "--shard", "3"}, "--to GROUP is required"},
		{[]string{"move", "--shard", "3", "--resume", "--abort"}, "exclude each other"},
		{[]string{"move", "--shard", "3", "--to", "g1"}, "no catalog: give --catalog DSN"},
		{[]string{"moves"}, "no catalog"},
		{[]string{"cleanup", "--shard", "-1"}, "--shard -1: give a shard 0..15"},
		{[]string{"move", "--shard", "3", "--to", "g1", "--catalog", "postgres://%zz"}, "invalid --catalog DSN"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errOut)
			if code != 1 || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut.String(), tt.want)
			}
		})
	}
}

func TestWriteMoves(t *testing.T) {
	start := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	moves := []*shardmap.Move{
		{ID: 2, Shard: 5, Source: "g4", Target: "g1", Phase: shardmap.PhaseAborted, ReverseOf: 1,
			CreatedAt: start, UpdatedAt: start.Add(3 * time.Second),
			Detail: shardmap.MoveDetail{Error: "proxies did not confirm", PauseSeconds: 0.5}},
		{ID: 1, Shard: 5, Source: "g1", Target: "g4", Phase: shardmap.PhaseDone,
			CreatedAt: start, UpdatedAt: start.Add(5400 * time.Millisecond),
			Detail: shardmap.MoveDetail{Rows: 100000, PauseSeconds: 0.875}},
	}
	var b bytes.Buffer
	writeMoves(&b, moves)
	got := b.String()
	for _, want := range []string{"MOVE", "aborted", "reverses move 1 proxies did not confirm", "0.875s", "100000", "5.4s"} {
		if !strings.Contains(got, want) {
			t.Errorf("moves table lacks %q:\n%s", want, got)
		}
	}
	b.Reset()
	writeMoves(&b, nil)
	if b.String() != "no moves\n" {
		t.Errorf("empty list printed %q", b.String())
	}
}

func TestWritePlan(t *testing.T) {
	m := &shardmap.Map{Epoch: 3}
	for i, name := range []string{"g0", "g1", "g2", "g3", "g4"} {
		m.Groups = append(m.Groups, shardmap.Group{Name: name, Region: "r", Writer: "h:" + string(rune('1'+i))})
	}
	for s := range m.Owner {
		m.Owner[s] = s / 4
		m.State[s] = shardmap.StateActive
	}
	var b bytes.Buffer
	steps := rebalance.Plan(m)
	writePlan(&b, m, steps)
	got := b.String()
	if !strings.Contains(got, "g4=3") || strings.Count(got, "=3") != 4 || strings.Count(got, "=4") != 1 {
		t.Errorf("plan output does not end 4/3/3/3/3:\n%s", got)
	}
	b.Reset()
	writePlan(&b, m, nil)
	if !strings.Contains(b.String(), "balanced") {
		t.Errorf("empty plan printed %q", b.String())
	}
}
