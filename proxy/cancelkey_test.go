package proxy

import "testing"

func TestCancelKeyCarriesNodeTag(t *testing.T) {
	r := newCancelRegistry()
	seen := map[uint32]bool{}
	for _, name := range []string{"p0", "p1", "p2", "shardwire-7f9c-0", "a-very-long-node-name.in.a.region"} {
		tag := NodeTag(name)
		if tag > tagMask {
			t.Fatalf("NodeTag(%q) = %d, more than %d bits", name, tag, tagBits)
		}
		for range 3 {
			k := r.newKey(tag)
			if k.pid == 0 || k.pid >= 1<<31 {
				t.Fatalf("key pid %#x for %q: want non-zero with bit 31 clear (drivers read it as int32)", k.pid, name)
			}
			if got := KeyTag(k.pid); got != tag {
				t.Fatalf("KeyTag(%#x) = %d, want %q's tag %d", k.pid, got, name, tag)
			}
			if seen[k.pid] {
				t.Fatalf("pid %#x issued twice", k.pid)
			}
			seen[k.pid] = true
		}
	}
	// The session number wraps within its bits without touching the tag.
	r.seq = seqMask - 1
	for range 3 {
		if k := r.newKey(5); KeyTag(k.pid) != 5 {
			t.Fatalf("after wrap: KeyTag(%#x) = %d, want 5", k.pid, KeyTag(k.pid))
		}
	}
}
