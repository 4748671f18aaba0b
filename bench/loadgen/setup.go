package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// CustomerCreator creates one customer of the benchmark, or finds that it exists already.
// It must be safe for concurrent use.
type CustomerCreator interface {
	CreateCustomer(ctx context.Context, id int64, tier string) (created bool, err error)
}

// SetupStats counts what Setup did.
type SetupStats struct {
	Created, Existed int64
	Elapsed          time.Duration
}

// Setup makes sure customers 1..n exist, with the tier tiers gives each by popularity rank
// (a customer that exists already keeps its tier). It runs workers requests at once and
// reports progress to progress (may be nil) every few seconds.
func Setup(ctx context.Context, cc CustomerCreator, z *Zipf, tiers TierMix, workers int, progress io.Writer) (SetupStats, error) {
	start := time.Now()
	n := z.n
	var next, created, existed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	if progress != nil {
		go func() {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					fmt.Fprintf(progress, "setup: %d of %d customers (%d created, %d existed)\n",
						created.Load()+existed.Load(), n, created.Load(), existed.Load())
				case <-done:
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				rank := next.Add(1)
				if rank > n {
					return
				}
				id := z.rankToID(rank)
				ok, err := cc.CreateCustomer(ctx, id, tiers.TierOfRank(rank, n))
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("setup: customer %d: %w", id, err); cancel() })
					return
				}
				if ok {
					created.Add(1)
				} else {
					existed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	st := SetupStats{Created: created.Load(), Existed: existed.Load(), Elapsed: time.Since(start)}
	if firstErr != nil {
		return st, firstErr
	}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("setup: %w", err)
	}
	return st, nil
}

// httpCreator creates customers with POST /v1/customers. When the service answers 429 it
// waits for Retry-After and tries again, so a rate-limited setup is slow but complete.
type httpCreator struct {
	api *API
}

// CreateCustomer implements CustomerCreator.
func (h httpCreator) CreateCustomer(ctx context.Context, id int64, tier string) (bool, error) {
	body, err := json.Marshal(map[string]any{"id": id, "name": "loadgen customer " + strconv.FormatInt(id, 10), "tier": tier})
	if err != nil {
		return false, fmt.Errorf("encode customer: %w", err)
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.api.base+"/v1/customers", bytes.NewReader(body))
		if err != nil {
			return false, fmt.Errorf("build request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		// The same key for the same customer and tier: a rerun replays instead of failing.
		req.Header.Set("Idempotency-Key", "loadgen-setup-"+strconv.FormatInt(id, 10)+"-"+tier)
		resp, err := h.api.hc.Do(req)
		if err != nil {
			return false, trimURLError(err)
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusCreated:
			return resp.Header.Get("Idempotent-Replayed") == "", nil
		case resp.StatusCode == http.StatusConflict && errorCode(data) == "customer_exists":
			return false, nil
		case resp.StatusCode == http.StatusTooManyRequests:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return false, ctx.Err()
			}
		default:
			return false, fmt.Errorf("POST /v1/customers: %s %s", resp.Status, errorCode(data))
		}
	}
}
