package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardwire/shardwire/invoiceapp"
)

// storeCreator creates customers with invoiceapp.Store over a database DSN (the proxy's),
// the same code path invoiced runs for POST /v1/customers minus the HTTP layer and its
// per-client-address rate limit (the free plan's, about 1,000 customers an hour), which makes
// creating 100,000 customers over HTTP from one address impractical.
type storeCreator struct {
	store *invoiceapp.Store
}

// newStoreCreator opens a pool of conns connections on dsn. Close the pool when done.
func newStoreCreator(ctx context.Context, dsn string, conns int) (storeCreator, *pgxpool.Pool, error) {
	pool, err := newProxyPool(ctx, dsn, conns)
	if err != nil {
		return storeCreator{}, nil, fmt.Errorf("--setup-dsn: %w", err)
	}
	return storeCreator{store: invoiceapp.NewStore(pool, invoiceapp.StoreOptions{})}, pool, nil
}

// newProxyPool opens a pool of at most conns connections on dsn, configured as cmd/invoiced
// configures its own (pgx defaults), and checks that it answers.
func newProxyPool(ctx context.Context, dsn string, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(max(conns, 1))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// CreateCustomer implements CustomerCreator.
func (s storeCreator) CreateCustomer(ctx context.Context, id int64, tier string) (bool, error) {
	name := "loadgen customer " + strconv.FormatInt(id, 10)
	_, err := s.store.CreateCustomer(ctx, invoiceapp.NewCustomer{ID: &id, Name: &name, Tier: &tier}, nil)
	if e := invoiceapp.AsError(err); e != nil && e.Code == invoiceapp.CodeCustomerExists {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}
