package main

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestInvoicesSampleIsBounded(t *testing.T) {
	s := NewInvoices()
	for i := range 3 * perCustomerInvoices {
		s.Put(7, fmt.Sprint("inv", i), int64(100+i))
	}
	// Only the newest perCustomerInvoices remain.
	for i := range 3 * perCustomerInvoices {
		_, ok := s.Balance(7, fmt.Sprint("inv", i))
		if want := i >= 2*perCustomerInvoices; ok != want {
			t.Errorf("inv%d known = %v, want %v", i, ok, want)
		}
	}
	for c := range int64(2 * recentInvoices) {
		s.Put(1000+c, "x", 1)
	}
	if len(s.ring) != recentInvoices {
		t.Errorf("recent ring holds %d, want %d", len(s.ring), recentInvoices)
	}
}

func TestInvoicesPutForget(t *testing.T) {
	s := NewInvoices()
	rng := rand.New(rand.NewPCG(1, 1))
	if _, ok := s.Recent(rng); ok {
		t.Fatal("empty sample returned a recent invoice")
	}
	if _, ok := s.Pick(1, 0); ok {
		t.Fatal("empty sample returned an invoice")
	}
	s.Put(1, "a", 500)
	s.Put(1, "a", 200) // update, not a second entry
	if b, ok := s.Balance(1, "a"); !ok || b != 200 {
		t.Errorf("balance = %d, %v; want 200", b, ok)
	}
	if id, ok := s.Pick(1, 12345); !ok || id != "a" {
		t.Errorf("pick = %q, %v", id, ok)
	}
	if ref, ok := s.Recent(rng); !ok || ref != (customerRef{1, "a"}) {
		t.Errorf("recent = %v, %v", ref, ok)
	}
	s.Put(1, "a", 0) // paid off: forgotten
	if _, ok := s.Balance(1, "a"); ok {
		t.Error("a paid invoice is still sampled")
	}
	if _, ok := s.Pick(1, 0); ok {
		t.Error("customer without open invoices still picks one")
	}
}

func TestPaymentAmountNeverExceedsBalance(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	full, part := 0, 0
	for range 10_000 {
		bal := 1 + rng.Int64N(1_000_000)
		a := paymentAmount(bal, rng.Uint64())
		if a < 1 || a > bal {
			t.Fatalf("paymentAmount(%d) = %d", bal, a)
		}
		if a == bal {
			full++
		} else {
			part++
		}
	}
	if full < 4000 || part < 4000 {
		t.Errorf("full %d partial %d: want about half each", full, part)
	}
}
