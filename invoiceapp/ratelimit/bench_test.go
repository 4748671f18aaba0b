package ratelimit

import (
	"context"
	"strconv"
	"testing"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// benchKeys is how many customers the benchmarks spread requests over.
const benchKeys = 10_000

func benchmarkAllow(b *testing.B, l *Limiter) {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			l.Allow(ctx, keys[i%benchKeys], Enterprise)
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				l.Allow(ctx, keys[i%benchKeys], Enterprise)
				i++
			}
		})
	})
}

func BenchmarkAllowRedis(b *testing.B) {
	r := pgtest.NewRedis(b)
	l := New(newClient(b, r), Options{Timeout: generous})
	benchmarkAllow(b, l)
	if d := l.Allow(context.Background(), "0", Enterprise); d.Local {
		b.Fatal("benchmark fell back to the local limiter")
	}
}

func BenchmarkAllowLocal(b *testing.B) {
	benchmarkAllow(b, New(nil, Options{}))
}
