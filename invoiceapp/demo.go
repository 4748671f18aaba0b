package invoiceapp

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"
)

// demoWorkers is how many customers LoadDemo loads at once.
const demoWorkers = 8

// LoadDemo creates demo customers 1..customers, each with a few invoices over the last five
// months in EUR or USD, some paid in full, some in part, some void. The data is the same for
// the same customer number every time; a customer that exists already is left alone, so
// running it again adds only missing customers.
func LoadDemo(ctx context.Context, db DB, customers int) error {
	if customers < 0 {
		return fmt.Errorf("load demo: customers = %d, want >= 0", customers)
	}
	s := NewStore(db, StoreOptions{})
	ids := make(chan int64)
	errs := make(chan error, demoWorkers)
	var wg sync.WaitGroup
	for range demoWorkers {
		wg.Go(func() {
			for id := range ids {
				if err := s.loadDemoCustomer(ctx, id); err != nil {
					errs <- fmt.Errorf("load demo customer %d: %w", id, err)
					return
				}
			}
		})
	}
	var err error
feed:
	for id := int64(1); id <= int64(customers); id++ {
		select {
		case ids <- id:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(ids)
	go func() { wg.Wait(); close(errs) }()
	for e := range errs {
		if err == nil {
			err = e
		}
	}
	return err
}

// demoTiers spreads the tiers: mostly free, a few of each paid plan.
var demoTiers = [...]Tier{TierFree, TierFree, TierFree, TierFree, TierFree, TierFree, TierBasic, TierBasic, TierPremium, TierEnterprise}

// loadDemoCustomer creates one demo customer and its invoices and payments.
func (s *Store) loadDemoCustomer(ctx context.Context, id int64) error {
	rng := rand.New(rand.NewPCG(uint64(id), 0x1f0ce))
	name := fmt.Sprintf("Demo Customer %d", id)
	tier := string(demoTiers[id%int64(len(demoTiers))])
	_, err := s.CreateCustomer(ctx, NewCustomer{ID: &id, Name: &name, Tier: &tier}, nil)
	if e := AsError(err); e != nil && e.Code == CodeCustomerExists {
		return nil
	}
	if err != nil {
		return err
	}
	today := s.today()
	for n := 2 + rng.IntN(7); n > 0; n-- {
		currency := "EUR"
		if rng.IntN(4) == 0 {
			currency = "USD"
		}
		issue := today.AddDays(-rng.IntN(150)).String()
		lines := make([]NewLine, 1+rng.IntN(4))
		for i := range lines {
			desc := fmt.Sprintf("Service item %d", 1+rng.IntN(40))
			qty := int64(1 + rng.IntN(10))
			price := int64(100 * (5 + rng.IntN(500)))
			lines[i] = NewLine{Description: &desc, Quantity: &qty, UnitPriceMinor: &price}
		}
		resp, err := s.CreateInvoice(ctx, id, NewInvoice{Currency: &currency, IssueDate: &issue, Lines: lines}, nil)
		if err != nil {
			return err
		}
		var inv struct {
			ID         uuid.UUID `json:"id"`
			TotalMinor int64     `json:"total_minor"`
		}
		if err := json.Unmarshal(resp.Body, &inv); err != nil {
			return fmt.Errorf("read created invoice: %w", err)
		}
		switch r := rng.IntN(10); {
		case r < 4: // paid in full, maybe in two payments
			first := inv.TotalMinor
			if r%2 == 0 && inv.TotalMinor > 1 {
				first = inv.TotalMinor / 2
				if err := s.demoPay(ctx, id, inv.ID, first); err != nil {
					return err
				}
				first = inv.TotalMinor - first
			}
			if err := s.demoPay(ctx, id, inv.ID, first); err != nil {
				return err
			}
		case r < 6: // partly paid
			if err := s.demoPay(ctx, id, inv.ID, inv.TotalMinor/3+1); err != nil {
				return err
			}
		case r < 7:
			if _, err := s.VoidInvoice(ctx, id, inv.ID, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// demoPay records one demo payment.
func (s *Store) demoPay(ctx context.Context, customerID int64, invoiceID uuid.UUID, amount int64) error {
	ref := "demo"
	_, err := s.RecordPayment(ctx, customerID, invoiceID, NewPayment{AmountMinor: &amount, Reference: &ref}, nil)
	return err
}
