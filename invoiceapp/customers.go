package invoiceapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
)

// randomIDAttempts bounds the retries of a random customer id that collided.
const randomIDAttempts = 4

// CreateCustomer creates a customer and returns the 201 response. Without in.ID the id is
// derived from the idempotency key when there is one (see CustomerIDForKey), else random.
// An existing id is a KindConflict error (customer_exists).
func (s *Store) CreateCustomer(ctx context.Context, in NewCustomer, key *IdempotencyKey) (Response, error) {
	v, err := in.validate()
	if err != nil {
		return Response{}, err
	}
	random := false
	id := v.ID
	switch {
	case id != 0:
	case key != nil:
		id = CustomerIDForKey(key.Key)
	default:
		random = true
	}
	for attempt := 1; ; attempt++ {
		if random {
			if id, err = RandomCustomerID(); err != nil {
				return Response{}, err
			}
		}
		resp, err := s.do(ctx, id, key, false, func(ctx context.Context, tx pgx.Tx) (Response, error) {
			c := Customer{ID: id, Name: v.Name, Tier: v.Tier}
			err := tx.QueryRow(ctx, `INSERT INTO customers (customer_id, name, tier) VALUES ($1, $2, $3)
ON CONFLICT (customer_id) DO NOTHING RETURNING created_at`, id, v.Name, string(v.Tier)).Scan(&c.CreatedAt)
			if errors.Is(err, pgx.ErrNoRows) {
				return Response{}, conflict(CodeCustomerExists, "customer %d already exists", id)
			}
			if err != nil {
				return Response{}, fmt.Errorf("insert customer %d: %w", id, err)
			}
			c.CreatedAt = c.CreatedAt.UTC()
			return jsonResponse(http.StatusCreated, c, fmt.Sprintf("/v1/customers/%d", id))
		})
		if e := AsError(err); random && e != nil && e.Code == CodeCustomerExists && attempt < randomIDAttempts {
			continue
		}
		return resp, err
	}
}

// GetCustomer returns customer id, or a KindNotFound error. It may read from a replica.
func (s *Store) GetCustomer(ctx context.Context, id int64) (Customer, error) {
	c := Customer{ID: id}
	var tier string
	err := s.db.QueryRow(ctx, `SELECT name, tier, created_at FROM customers WHERE customer_id = $1`, id).
		Scan(&c.Name, &tier, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, errCustomerNotFound(id)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer %d: %w", id, err)
	}
	c.Tier = Tier(tier)
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// CustomerTier returns customer id's tier; ok is false when the customer does not exist.
func (s *Store) CustomerTier(ctx context.Context, id int64) (tier Tier, ok bool, err error) {
	var t string
	err = s.db.QueryRow(ctx, `SELECT tier FROM customers WHERE customer_id = $1`, id).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("tier of customer %d: %w", id, err)
	}
	return Tier(t), true, nil
}

// requireCustomer fails with KindNotFound when customer id does not exist.
func requireCustomer(ctx context.Context, q querier, id int64) error {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM customers WHERE customer_id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return errCustomerNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("look up customer %d: %w", id, err)
	}
	return nil
}
