package main

import (
	"math/rand/v2"
	"sync"
)

// Bounds of the invoice sample.
const (
	perCustomerInvoices = 8    // open invoices remembered per customer
	recentInvoices      = 4096 // size of the ring of recently seen invoices, any customer
	sampleShards        = 64
)

// knownInvoice is an open invoice loadgen has seen, with its balance when last seen.
type knownInvoice struct {
	id      string
	balance int64
}

// customerRef names an invoice of a customer in the recent ring.
type customerRef struct {
	customer int64
	id       string
}

// Invoices is a bounded sample of open invoices per customer, fed by the invoices loadgen
// creates and lists, and read by get-invoice and record-payment requests. It holds at most
// perCustomerInvoices per customer (newest kept) and a ring of the recentInvoices last seen
// across customers, for requests whose customer has none yet. Safe for concurrent use.
type Invoices struct {
	shards [sampleShards]struct {
		mu sync.Mutex
		m  map[int64][]knownInvoice
	}
	ringMu sync.Mutex
	ring   []customerRef
	next   int
}

// NewInvoices returns an empty sample.
func NewInvoices() *Invoices {
	s := &Invoices{ring: make([]customerRef, 0, recentInvoices)}
	for i := range s.shards {
		s.shards[i].m = map[int64][]knownInvoice{}
	}
	return s
}

func (s *Invoices) shard(customer int64) (*sync.Mutex, map[int64][]knownInvoice) {
	sh := &s.shards[uint64(customer)%sampleShards]
	return &sh.mu, sh.m
}

// Put remembers an open invoice with its balance (or updates the balance of a known one).
// An invoice with nothing left to pay is forgotten instead.
func (s *Invoices) Put(customer int64, id string, balance int64) {
	if balance <= 0 {
		s.Forget(customer, id)
		return
	}
	mu, m := s.shard(customer)
	mu.Lock()
	list := m[customer]
	found := false
	for i := range list {
		if list[i].id == id {
			list[i].balance = balance
			found = true
			break
		}
	}
	if !found {
		if len(list) >= perCustomerInvoices {
			list = append(list[:0], list[1:]...)
		}
		list = append(list, knownInvoice{id: id, balance: balance})
		m[customer] = list
	}
	mu.Unlock()
	if !found {
		s.ringMu.Lock()
		if len(s.ring) < recentInvoices {
			s.ring = append(s.ring, customerRef{customer, id})
		} else {
			s.ring[s.next] = customerRef{customer, id}
			s.next = (s.next + 1) % recentInvoices
		}
		s.ringMu.Unlock()
	}
}

// Forget drops an invoice (paid, void or gone).
func (s *Invoices) Forget(customer int64, id string) {
	mu, m := s.shard(customer)
	mu.Lock()
	defer mu.Unlock()
	list := m[customer]
	for i := range list {
		if list[i].id == id {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(m, customer)
	} else {
		m[customer] = list
	}
}

// Pick returns one of the customer's known open invoices chosen by r; ok is false when the
// customer has none.
func (s *Invoices) Pick(customer int64, r uint64) (id string, ok bool) {
	mu, m := s.shard(customer)
	mu.Lock()
	defer mu.Unlock()
	list := m[customer]
	if len(list) == 0 {
		return "", false
	}
	return list[r%uint64(len(list))].id, true
}

// Balance returns the last balance seen for an invoice; ok is false when it is not known
// (never seen, or forgotten because it was paid).
func (s *Invoices) Balance(customer int64, id string) (int64, bool) {
	mu, m := s.shard(customer)
	mu.Lock()
	defer mu.Unlock()
	for _, inv := range m[customer] {
		if inv.id == id {
			return inv.balance, true
		}
	}
	return 0, false
}

// Recent returns a recently seen invoice of any customer, chosen by rng; ok is false when
// none has been seen yet. The invoice may have been paid since.
func (s *Invoices) Recent(rng *rand.Rand) (customerRef, bool) {
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	if len(s.ring) == 0 {
		return customerRef{}, false
	}
	return s.ring[rng.IntN(len(s.ring))], true
}
