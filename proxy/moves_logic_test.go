package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardwire/shardwire/proxy/wire"
	"github.com/shardwire/shardwire/router"
	"github.com/shardwire/shardwire/shardmap"
)

func TestFencedInTxError(t *testing.T) {
	cases := []struct {
		name       string
		in         pgproto3.ErrorResponse
		wantDetail string // a part the rewritten detail must hold
	}{
		{"no detail", pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: shardmap.CodeShardFenced,
			Message: "shard 5 is fenced for move 9", Where: "PL/pgSQL function fence()"}, "moved"},
		{"detail kept", pgproto3.ErrorResponse{Severity: "ERROR", Code: shardmap.CodeShardFenced,
			Message: "shard 5 is fenced", Detail: "move 9 switches it to g1"}, "move 9 switches it to g1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := tc.in.Encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			out := fencedInTxError(in)
			if wire.Frame(out).Type() != wire.ErrorResponse {
				t.Fatalf("type %q", wire.Frame(out).Type())
			}
			var got pgproto3.ErrorResponse
			if err := got.Decode(append([]byte(nil), wire.Frame(out).Body()...)); err != nil {
				t.Fatalf("rewritten frame does not decode: %v", err)
			}
			if got.Code != codeSerializationFailure || got.Message != tc.in.Message || got.Severity != tc.in.Severity ||
				got.Where != tc.in.Where {
				t.Fatalf("got %+v from %+v", got, tc.in)
			}
			if !strings.Contains(got.Detail, "moved") || !strings.Contains(got.Detail, tc.wantDetail) {
				t.Fatalf("detail %q", got.Detail)
			}
			if n := int(uint32(out[1])<<24 | uint32(out[2])<<16 | uint32(out[3])<<8 | uint32(out[4])); n != len(out)-1 {
				t.Fatalf("length field %d for %d bytes", n, len(out)-1)
			}
		})
	}
}

func TestMoveDDLError(t *testing.T) {
	base := &shardmap.Map{Tables: map[string]string{"invoices": "customer_id"}}
	for i := range base.State {
		base.State[i] = shardmap.StateActive
	}
	moving := *base
	moving.State[5] = shardmap.StateMoving
	moving.State[9] = shardmap.StateFrozen
	cases := []struct {
		name string
		m    *shardmap.Map
		plan router.Plan
		want string // "" for no error, else a part of the message
	}{
		{"no move", base, router.Plan{Kind: router.KindDDL, Tables: []string{"invoices"}}, ""},
		{"sharded table", &moving, router.Plan{Kind: router.KindDDL, Tables: []string{"invoices"}}, "shards 5,9 are being moved"},
		{"unsharded table", &moving, router.Plan{Kind: router.KindDDL, Tables: []string{"settings"}}, ""},
		{"write", &moving, router.Plan{Kind: router.KindWrite, Tables: []string{"invoices"}}, ""},
		{"no table", &moving, router.Plan{Kind: router.KindDDL}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ce := moveDDLError(&tc.plan, tc.m)
			switch {
			case tc.want == "" && ce != nil:
				t.Fatalf("refused: %v", ce)
			case tc.want != "" && (ce == nil || ce.code != codeObjectNotInPrerequisiteState || !strings.Contains(ce.message, tc.want)):
				t.Fatalf("got %v, want 55000 with %q", ce, tc.want)
			}
		})
	}
}

func TestMoveStateFollowsTheMap(t *testing.T) {
	m := &shardmap.Map{Epoch: 1}
	for i := range m.State {
		m.State[i] = shardmap.StateActive
	}
	store := shardmap.NewStore(m)
	ms := newMoveState(store, prometheus.NewRegistry())
	if _, past := ms.pastGrace(shardmap.AllShards, 0, time.Now().Add(time.Hour)); past {
		t.Fatal("an active shard is past grace")
	}
	frozen := *m
	frozen.Epoch = 2
	frozen.State[3] = shardmap.StateFrozen
	store.Set(&frozen)
	at := time.Unix(0, ms.frozenAt[3].Load())
	if _, past := ms.pastGrace(shardmap.Of(3), time.Second, at.Add(time.Second/2)); past {
		t.Fatal("past grace half way through it")
	}
	if sh, past := ms.pastGrace(shardmap.Of(1, 3), time.Second, at.Add(2*time.Second)); !past || sh != 3 {
		t.Fatalf("pastGrace = %d, %v after the grace", sh, past)
	}
	again := frozen // another epoch with the shard still frozen keeps the first sight
	again.Epoch = 3
	store.Set(&again)
	if got := time.Unix(0, ms.frozenAt[3].Load()); !got.Equal(at) {
		t.Fatalf("frozen since %v, then %v", at, got)
	}
	thawed := *m
	thawed.Epoch = 4
	store.Set(&thawed)
	if ms.frozenAt[3].Load() != 0 {
		t.Fatal("a thawed shard still counts as frozen")
	}

	if !ms.take(2) || !ms.take(2) || ms.take(2) {
		t.Fatal("limit 2 not kept")
	}
	ms.put()
	if !ms.take(2) {
		t.Fatal("a freed place was not taken")
	}
}
