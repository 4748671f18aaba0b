package cache

import (
	"strings"
	"testing"
)

func TestKeyBuilderSeparatesParts(t *testing.T) {
	type build func(b *KeyBuilder)
	cases := []struct {
		name string
		a, b build
	}{
		{"string boundary", func(b *KeyBuilder) { b.String("ab"); b.String("c") }, func(b *KeyBuilder) { b.String("a"); b.String("bc") }},
		{"empty part", func(b *KeyBuilder) { b.String("a") }, func(b *KeyBuilder) { b.String("a"); b.String("") }},
		{"string vs bytes", func(b *KeyBuilder) { b.String("x") }, func(b *KeyBuilder) { b.Bytes([]byte("x")) }},
		{"uint64 vs its bytes", func(b *KeyBuilder) { b.Uint64(0x6162636465666768) }, func(b *KeyBuilder) { b.Bytes([]byte("abcdefgh")) }},
		{"uint64 vs length prefix", func(b *KeyBuilder) { b.Uint64(1); b.String("") }, func(b *KeyBuilder) { b.String(""); b.Uint64(1) }},
		{"order", func(b *KeyBuilder) { b.Uint64(1); b.Uint64(2) }, func(b *KeyBuilder) { b.Uint64(2); b.Uint64(1) }},
		{"nothing vs empty", func(b *KeyBuilder) {}, func(b *KeyBuilder) { b.Bytes(nil) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewKeyBuilder()
			tc.a(b)
			ka := b.Sum()
			b.Reset()
			tc.b(b)
			if kb := b.Sum(); ka == kb {
				t.Fatalf("different parts hash alike: %s", ka)
			}
		})
	}
}

func TestKeyBuilderReuse(t *testing.T) {
	long := strings.Repeat("select 1 ", 20000) // larger than the scratch kept
	build := func(b *KeyBuilder) Key {
		b.String("db")
		b.String(long)
		b.Bytes([]byte{1, 2, 3})
		b.Uint64(42)
		return b.Sum()
	}
	b := NewKeyBuilder()
	first := build(b)
	if again := b.Sum(); again != first {
		t.Fatal("Sum changed the builder's state")
	}
	b.Reset()
	if second := build(b); second != first {
		t.Fatalf("same parts after Reset: %s, want %s", second, first)
	}
	if fresh := build(NewKeyBuilder()); fresh != first {
		t.Fatalf("fresh builder: %s, want %s", fresh, first)
	}
	b.Uint64(7)
	if b.Sum() == first {
		t.Fatal("a part added after Sum did not change the key")
	}
	if got := first.String(); len(got) != 64 {
		t.Fatalf("String() = %q, want 64 hex digits", got)
	}
}

func TestKeyBuilderAllocations(t *testing.T) {
	b := NewKeyBuilder()
	payload := []byte("param")
	allocs := testing.AllocsPerRun(100, func() {
		b.Reset()
		b.String("SELECT * FROM invoices WHERE customer_id = $1")
		b.Bytes(payload)
		b.Uint64(99)
		_ = b.Sum()
	})
	if allocs != 0 {
		t.Fatalf("building a key allocates %.1f times, want 0", allocs)
	}
}
