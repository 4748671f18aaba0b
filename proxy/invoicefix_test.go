package proxy

// The invoice fixture for the routing acceptance tests: a schema, a deterministic loader, the
// statements to compare (scattered, unmergeable and routed), and the machinery that runs a
// statement and compares its result with a reference run on plain Postgres.
//
// Results are compared by raw bytes: every value is kept exactly as it arrived on the wire
// together with its column's type OID, type modifier and format code. The same server type
// in the same format prints the same bytes, so a byte comparison is stricter than decoding
// (it catches a numeric of the wrong scale, a float printed with other digits, a timestamp in
// another style) and needs no per-type code. Decoding is used only to print a diff. The
// text form depends on the session's output settings (DateStyle, TimeZone,
// extra_float_digits, ...), so the two sides compared must run with the same settings; the
// binary form does not.
//
// The test databases are initialized with --locale=C, so text sorts bytewise in every case
// below; a merge that orders text must do the same.

import (
	"cmp"
	"context"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// invoiceSchema creates the sharded invoice tables, one statement per element (DDL goes
// through the proxy statement by statement). There are no sequences: the loader makes every
// id, invoice_id = customer_id*1000 + n.
var invoiceSchema = []string{
	`CREATE TABLE customers (
	customer_id bigint PRIMARY KEY,
	name text NOT NULL,
	tier text NOT NULL CHECK (tier IN ('free', 'basic', 'premium', 'enterprise')),
	country text,
	created_at timestamptz NOT NULL
)`,
	`CREATE TABLE invoices (
	customer_id bigint NOT NULL,
	invoice_id bigint NOT NULL,
	number text NOT NULL,
	status text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void')),
	currency char(3) NOT NULL,
	total_minor bigint NOT NULL,
	issued_on date NOT NULL,
	due_at timestamptz,
	paid_minor numeric(14,2) NOT NULL DEFAULT 0,
	weight double precision,
	ref uuid NOT NULL,
	PRIMARY KEY (customer_id, invoice_id)
)`,
	`CREATE TABLE invoice_lines (
	customer_id bigint NOT NULL,
	invoice_id bigint NOT NULL,
	line_no int NOT NULL,
	description text NOT NULL,
	quantity int NOT NULL,
	unit_price_minor bigint NOT NULL,
	PRIMARY KEY (customer_id, invoice_id, line_no)
)`,
	`CREATE INDEX invoices_status_issued_on_idx ON invoices (status, issued_on)`,
	`CREATE INDEX invoices_ref_idx ON invoices (ref)`,
	`CREATE INDEX customers_name_idx ON customers (name)`,
}

// invoiceTables are the sharded tables of invoiceSchema, parents first.
var invoiceTables = []string{"customers", "invoices", "invoice_lines"}

// createInvoiceSchema runs invoiceSchema on conn, statement by statement.
func createInvoiceSchema(ctx context.Context, conn *pgx.Conn) error {
	for _, stmt := range invoiceSchema {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("invoice schema: %s: %w", fixtureFirstLine(stmt), err)
		}
	}
	return nil
}

// tableCounts counts rows per sharded table.
type tableCounts struct {
	Customers, Invoices, Lines int64
}

// of returns the count for one of invoiceTables.
func (c tableCounts) of(table string) int64 {
	switch table {
	case "customers":
		return c.Customers
	case "invoices":
		return c.Invoices
	case "invoice_lines":
		return c.Lines
	}
	panic("invoice fixture: unknown table " + table)
}

// add returns c + d.
func (c tableCounts) add(d tableCounts) tableCounts {
	return tableCounts{c.Customers + d.Customers, c.Invoices + d.Invoices, c.Lines + d.Lines}
}

// rowCounts is what loadInvoices wrote: totals and the rows of every customer (each customer
// has exactly one customers row, so its Customers count is 1).
type rowCounts struct {
	Total      tableCounts
	ByCustomer map[int64]tableCounts
}

// customerIDs returns every loaded customer id, ascending.
func (rc rowCounts) customerIDs() []int64 {
	ids := make([]int64, 0, len(rc.ByCustomer))
	for id := range rc.ByCustomer {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Shape of the generated data.
const (
	fixtureMaxInvoices = 5 // 0..5 invoices per customer
	fixtureMaxLines    = 4 // 1..4 lines per invoice
	// fixtureLargeIDBase and fixtureLargeIDSpan place a third of the customer ids far above 2^32 while
	// keeping customer_id*1000 + n inside int64.
	fixtureLargeIDBase = int64(1) << 50
	fixtureLargeIDSpan = int64(1) << 52
)

// fixtureEpoch is the earliest generated timestamp; data spans about six years from it.
var fixtureEpoch = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)

// Value pools. Duplicates across customers are intended (ties for ORDER BY), as are mixed
// case, non-ASCII text and empty strings.
var (
	fixtureNames = []string{"Acme", "ACME", "acme", "Émile Zola SARL", "émile zola sarl",
		"Straße & Söhne", "STRASSE & SÖHNE", "Zoë's Café", "zoe's cafe", "Björk AB", "",
		"Ørsted", "Łódź Sp. z o.o.", "日本商事", "Ñandú SA", "O'Brien Ltd", "Smith", "smith",
		"Müller GmbH", "Mueller GmbH", " padded ", "a", "Z"}
	fixtureCountries    = []string{"DE", "FR", "US", "GB", "CH", "JP", "ES", "", "de"}
	fixtureCurrencies   = []string{"EUR", "USD", "GBP", "CHF", "JPY"}
	fixtureDescriptions = []string{"Consulting", "consulting", "CONSULTING", "Café crème",
		"Straße-Reinigung", "Übersetzung", "", "Licence — annual", "Support (hours)",
		"naïve résumé", "Ωmega", "rocket 🚀", "widget", "Widget"}
	fixtureRoundAmounts = []int64{0, 100, 1000, 2500, 5000, 9900, 10000, 99900}
	// fixtureTieInstants are created_at values shared by many customers.
	fixtureTieInstants = []time.Time{
		time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2023, 6, 15, 8, 30, 0, 500000000, time.UTC),
	}
)

// fixtureCustomer is one generated customer with its invoices.
type fixtureCustomer struct {
	id        int64
	name      string
	tier      string
	country   *string
	createdAt time.Time
	invoices  []fixtureInvoice
}

// fixtureInvoice is one generated invoice with its lines.
type fixtureInvoice struct {
	id           int64
	number       string
	status       string
	currency     string
	totalMinor   int64
	issuedOn     time.Time // midnight UTC
	dueAt        *time.Time
	paidHundreds int64 // paid_minor * 100
	weight       *float64
	ref          [16]byte
	lines        []fixtureLine
}

// fixtureLine is one generated invoice line.
type fixtureLine struct {
	no             int32
	description    string
	quantity       int32
	unitPriceMinor int64
}

// loadInvoices generates the invoice data set for seed and inserts it through conns, which
// must already hold invoiceSchema's tables (empty). The same (customers, seed) always gives
// the same rows, whatever the number of connections or their exec modes.
//
// customers customers get distinct positive ids, a third each small (up to 4*customers),
// above 2^32, and above 2^50; with 16 or more customers every shard 0..15 gets at least one.
// Each has 0..5 invoices and each invoice 1..4 lines. due_at, weight and country are
// sometimes NULL (country is sometimes the empty string); ordering columns have many ties;
// text mixes case, non-ASCII and empty strings; timestamps span 2019-2025. weight values are
// multiples of 0.25 below 10,000, so float sums are exact and do not depend on summation
// order (a merged SUM/AVG of double precision must then match a single server's bit for bit).
//
// Every statement holds the rows of one customer, and each customer's statements are sent as
// one pgx.Batch (one implicit transaction, on one shard group). Customers are spread over
// conns, one goroutine per connection. On error the returned error names the customer and
// some connections may have been closed by pgx.
func loadInvoices(ctx context.Context, conns []*pgx.Conn, customers int, seed int64) (rowCounts, error) {
	if len(conns) == 0 {
		return rowCounts{}, errors.New("load invoices: no connections")
	}
	if customers < 0 {
		return rowCounts{}, fmt.Errorf("load invoices: %d customers", customers)
	}
	data := fixtureGenerate(customers, seed)
	counts := rowCounts{ByCustomer: make(map[int64]tableCounts, len(data))}
	for _, c := range data {
		tc := tableCounts{Customers: 1, Invoices: int64(len(c.invoices))}
		for _, inv := range c.invoices {
			tc.Lines += int64(len(inv.lines))
		}
		counts.ByCustomer[c.id] = tc
		counts.Total = counts.Total.add(tc)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for w, conn := range conns {
		wg.Go(func() {
			for i := w; i < len(data); i += len(conns) {
				if ctx.Err() != nil {
					return
				}
				if err := conn.SendBatch(ctx, data[i].batch()).Close(); err != nil {
					errs[w] = fmt.Errorf("load invoices: customer %d: %w", data[i].id, err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return rowCounts{}, err
	}
	if err := ctx.Err(); err != nil {
		return rowCounts{}, fmt.Errorf("load invoices: %w", err)
	}
	return counts, nil
}

// fixtureGenerate returns the data set for (customers, seed). Ids come from one generator
// seeded with seed; each customer's rows from a generator seeded with (seed, id).
func fixtureGenerate(customers int, seed int64) []fixtureCustomer {
	r := rand.New(rand.NewPCG(uint64(seed), 0x1a2b3c4d))
	seen := make(map[int64]bool, customers)
	data := make([]fixtureCustomer, 0, customers)
	for len(data) < customers {
		var id int64
		switch r.IntN(3) {
		case 0:
			id = 1 + r.Int64N(int64(customers)*4)
		case 1:
			id = 1<<32 + r.Int64N(1<<40)
		default:
			id = fixtureLargeIDBase + r.Int64N(fixtureLargeIDSpan)
		}
		if i := int64(len(data)); i < 16 { // the first 16 cover every shard
			id = id - id%16 + i
			if id <= 0 {
				id += 16
			}
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		data = append(data, fixtureGenerateCustomer(id, seed))
	}
	return data
}

// fixtureGenerateCustomer returns customer id's row and its invoices for seed.
func fixtureGenerateCustomer(id, seed int64) fixtureCustomer {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(id)))
	c := fixtureCustomer{id: id, name: fixturePick(r, fixtureNames)}
	if r.IntN(2) == 0 {
		c.name += " " + strconv.Itoa(r.IntN(50))
	}
	switch n := r.IntN(10); {
	case n < 4:
		c.tier = "free"
	case n < 7:
		c.tier = "basic"
	case n < 9:
		c.tier = "premium"
	default:
		c.tier = "enterprise"
	}
	if r.IntN(8) != 0 {
		country := fixturePick(r, fixtureCountries)
		c.country = &country
	}
	if r.IntN(10) == 0 {
		c.createdAt = fixturePick(r, fixtureTieInstants)
	} else {
		c.createdAt = fixtureEpoch.Add(time.Duration(r.Int64N(6*365*86400)) * time.Second)
		if r.IntN(3) == 0 {
			c.createdAt = c.createdAt.Add(time.Duration(r.IntN(1_000_000)) * time.Microsecond)
		}
	}
	for n := range r.IntN(fixtureMaxInvoices + 1) {
		c.invoices = append(c.invoices, fixtureGenerateInvoice(r, id, n+1))
	}
	return c
}

// fixtureGenerateInvoice returns invoice n (1-based) of customer.
func fixtureGenerateInvoice(r *rand.Rand, customer int64, n int) fixtureInvoice {
	inv := fixtureInvoice{id: customer*1000 + int64(n), currency: fixturePick(r, fixtureCurrencies)}
	switch r.IntN(10) {
	case 0:
		inv.number = fmt.Sprintf("inv-%04d", n)
	case 1:
		inv.number = fmt.Sprintf("Rechnung Nº %d", n)
	case 2:
		inv.number = ""
	default:
		inv.number = fmt.Sprintf("INV-%04d", n)
	}
	switch k := r.IntN(10); {
	case k < 1:
		inv.status = "draft"
	case k < 4:
		inv.status = "open"
	case k < 9:
		inv.status = "paid"
	default:
		inv.status = "void"
	}
	switch k := r.IntN(10); {
	case k < 4:
		inv.totalMinor = fixturePick(r, fixtureRoundAmounts)
	case k < 9:
		inv.totalMinor = r.Int64N(500_000)
	default:
		inv.totalMinor = r.Int64N(1_000_000_000_000)
	}
	inv.issuedOn = fixtureEpoch.AddDate(0, 0, r.IntN(6*365))
	if r.IntN(4) != 0 {
		due := inv.issuedOn.AddDate(0, 0, fixturePick(r, []int{14, 30, 30, 60}))
		if r.IntN(2) == 0 {
			due = due.Add(time.Duration(r.Int64N(86_400_000_000)) * time.Microsecond)
		}
		inv.dueAt = &due
	}
	switch inv.status {
	case "paid":
		inv.paidHundreds = inv.totalMinor * 100
	case "open":
		if r.IntN(2) == 0 {
			inv.paidHundreds = r.Int64N(inv.totalMinor+1)*100 + fixturePick(r, []int64{0, 50, 99})
		}
	}
	if r.IntN(10) >= 3 {
		w := float64(r.IntN(40_000)) / 4
		inv.weight = &w
	}
	binary.BigEndian.PutUint64(inv.ref[:8], r.Uint64())
	binary.BigEndian.PutUint64(inv.ref[8:], r.Uint64())
	inv.ref[6] = inv.ref[6]&0x0f | 0x40 // version 4
	inv.ref[8] = inv.ref[8]&0x3f | 0x80 // RFC 4122 variant
	for l := range 1 + r.IntN(fixtureMaxLines) {
		line := fixtureLine{no: int32(l + 1), description: fixturePick(r, fixtureDescriptions), quantity: int32(r.IntN(12))}
		switch k := r.IntN(8); {
		case k < 1:
			line.unitPriceMinor = -r.Int64N(5000) // a discount
		case k < 4:
			line.unitPriceMinor = fixturePick(r, fixtureRoundAmounts)
		default:
			line.unitPriceMinor = r.Int64N(100_000)
		}
		inv.lines = append(inv.lines, line)
	}
	return inv
}

// fixturePick returns a random element of s.
func fixturePick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// batch returns the customer's inserts: its customers row, one multi-row INSERT of its
// invoices and one of its lines (each statement holds this customer's rows only).
func (c *fixtureCustomer) batch() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO customers (customer_id, name, tier, country, created_at) VALUES ($1, $2, $3, $4, $5)`,
		c.id, c.name, c.tier, c.country, c.createdAt)
	if len(c.invoices) == 0 {
		return b
	}
	var invArgs, lineArgs []any
	lines := 0
	for _, inv := range c.invoices {
		invArgs = append(invArgs, c.id, inv.id, inv.number, inv.status, inv.currency, inv.totalMinor,
			pgtype.Date{Time: inv.issuedOn, Valid: true}, inv.dueAt,
			pgtype.Numeric{Int: big.NewInt(inv.paidHundreds), Exp: -2, Valid: true},
			inv.weight, pgtype.UUID{Bytes: inv.ref, Valid: true})
		for _, l := range inv.lines {
			lineArgs = append(lineArgs, c.id, inv.id, l.no, l.description, l.quantity, l.unitPriceMinor)
			lines++
		}
	}
	b.Queue(`INSERT INTO invoices (customer_id, invoice_id, number, status, currency, total_minor, issued_on, due_at, paid_minor, weight, ref) VALUES `+
		fixtureValuesList(len(c.invoices), 11), invArgs...)
	b.Queue(`INSERT INTO invoice_lines (customer_id, invoice_id, line_no, description, quantity, unit_price_minor) VALUES `+
		fixtureValuesList(lines, 6), lineArgs...)
	return b
}

// fixtureValuesList returns "($1, $2), ($3, $4)" for rows rows of cols parameters.
func fixtureValuesList(rows, cols int) string {
	var b strings.Builder
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteString("$" + strconv.Itoa(r*cols+c+1))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// queryCase is one statement to run directly and through the proxy and compare.
type queryCase struct {
	name    string
	sql     string
	args    []any
	ordered bool // the statement has a total ORDER BY: rows must come in the same order
	noRows  bool // the statement returns no rows by design (all other cases return some)
}

// scatterCases are keyless statements over the sharded tables that a scatter-and-merge must
// answer exactly as one Postgres holding all rows does. Every ORDER BY that limits rows or
// that is marked ordered is total (it ends with the primary key).
var scatterCases = []queryCase{
	// Counts and plain aggregates.
	{name: "count_star", sql: `SELECT count(*) FROM invoices`},
	{name: "count_star_lines", sql: `SELECT count(*) FROM invoice_lines`},
	{name: "count_columns_with_nulls", sql: `SELECT count(due_at), count(weight), count(*) FROM invoices`},
	{name: "count_country", sql: `SELECT count(country) FROM customers`},
	{name: "sum_bigint", sql: `SELECT sum(total_minor) FROM invoices`},
	{name: "sum_numeric", sql: `SELECT sum(paid_minor) FROM invoices`},
	{name: "sum_int_and_bigint_product", sql: `SELECT sum(quantity), sum(quantity * unit_price_minor) FROM invoice_lines`},
	{name: "sum_double", sql: `SELECT sum(weight) FROM invoices`},
	{name: "min_max_text", sql: `SELECT min(name), max(name) FROM customers`},
	{name: "min_max_date", sql: `SELECT min(issued_on), max(issued_on) FROM invoices`},
	{name: "min_max_timestamptz", sql: `SELECT min(due_at), max(due_at) FROM invoices`},
	{name: "min_max_numeric", sql: `SELECT min(paid_minor), max(paid_minor) FROM invoices`},
	{name: "min_max_bigint_negative", sql: `SELECT min(unit_price_minor), max(unit_price_minor) FROM invoice_lines`},
	{name: "min_max_char", sql: `SELECT min(currency), max(currency) FROM invoices`},
	// Postgres 15 has no min(uuid)/max(uuid); the smallest and largest uuid come from ORDER BY.
	{name: "min_uuid", sql: `SELECT ref FROM invoices ORDER BY ref, customer_id, invoice_id LIMIT 1`, ordered: true},
	{name: "max_uuid", sql: `SELECT ref FROM invoices ORDER BY ref DESC, customer_id, invoice_id LIMIT 1`, ordered: true},
	{name: "avg_bigint", sql: `SELECT avg(total_minor) FROM invoices`},
	{name: "avg_int", sql: `SELECT avg(quantity) FROM invoice_lines`},
	{name: "avg_numeric", sql: `SELECT avg(paid_minor) FROM invoices`},
	{name: "avg_double", sql: `SELECT avg(weight) FROM invoices`},
	{name: "aggregates_mixed", sql: `SELECT count(*), sum(total_minor), min(issued_on), max(due_at), avg(weight), max(number) FROM invoices`},

	// GROUP BY.
	{name: "group_by_status", sql: `SELECT status, count(*), count(due_at), sum(total_minor), sum(paid_minor), sum(weight),
	min(issued_on), max(due_at), min(number), max(ref::text), avg(total_minor), avg(paid_minor), avg(weight)
FROM invoices GROUP BY status`},
	{name: "group_by_currency_ordered", sql: `SELECT currency, count(*), sum(total_minor), min(paid_minor), max(paid_minor), avg(total_minor)
FROM invoices GROUP BY currency ORDER BY currency`, ordered: true},
	{name: "group_by_tier", sql: `SELECT tier, count(*), count(country), min(name), max(name), min(created_at), max(created_at)
FROM customers GROUP BY tier ORDER BY tier DESC`, ordered: true},
	{name: "group_by_two_keys_order_by_aggregate", sql: `SELECT status, currency, count(*), sum(total_minor)
FROM invoices GROUP BY status, currency ORDER BY count(*) DESC, status, currency`, ordered: true},
	{name: "group_by_with_param", sql: `SELECT currency, count(*), sum(paid_minor), avg(quantity)
FROM invoices i JOIN invoice_lines l ON l.customer_id = i.customer_id AND l.invoice_id = i.invoice_id
WHERE i.status = $1 GROUP BY currency`, args: []any{"paid"}},
	{name: "group_by_description", sql: `SELECT description, count(*), sum(quantity) FROM invoice_lines GROUP BY description`},

	// ORDER BY ... LIMIT ... OFFSET, with ties broken by the primary key.
	{name: "order_bigint_limit_offset", sql: `SELECT customer_id, invoice_id, total_minor FROM invoices
ORDER BY total_minor, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_text", sql: `SELECT customer_id, name FROM customers ORDER BY name, customer_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_text_desc", sql: `SELECT customer_id, name, country FROM customers
ORDER BY name DESC, customer_id DESC LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_text_nulls_first", sql: `SELECT customer_id, country FROM customers
ORDER BY country NULLS FIRST, customer_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_text_desc_nulls_last", sql: `SELECT customer_id, country FROM customers
ORDER BY country DESC NULLS LAST, customer_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_date_desc", sql: `SELECT customer_id, invoice_id, issued_on FROM invoices
ORDER BY issued_on DESC, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_timestamptz_nulls_first", sql: `SELECT customer_id, invoice_id, due_at FROM invoices
ORDER BY due_at NULLS FIRST, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_timestamptz_desc_nulls_last", sql: `SELECT customer_id, invoice_id, due_at FROM invoices
ORDER BY due_at DESC NULLS LAST, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_timestamptz_created", sql: `SELECT customer_id, created_at FROM customers
ORDER BY created_at, customer_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_numeric_desc", sql: `SELECT customer_id, invoice_id, paid_minor FROM invoices
ORDER BY paid_minor DESC, customer_id DESC, invoice_id DESC LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_double_nulls_last", sql: `SELECT customer_id, invoice_id, weight FROM invoices
ORDER BY weight NULLS LAST, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_double_desc_default_nulls", sql: `SELECT customer_id, invoice_id, weight FROM invoices
ORDER BY weight DESC, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_uuid", sql: `SELECT ref, customer_id, invoice_id, number FROM invoices
ORDER BY ref, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_multi_key", sql: `SELECT customer_id, invoice_id, status, currency, total_minor FROM invoices
ORDER BY status, currency DESC, total_minor, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_by_column_not_selected", sql: `SELECT number, status, total_minor FROM invoices
ORDER BY issued_on, customer_id, invoice_id LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_by_ordinal", sql: `SELECT customer_id, created_at FROM customers ORDER BY 2 DESC, 1 LIMIT 50 OFFSET 20`, ordered: true},
	{name: "order_limit_only", sql: `SELECT customer_id, invoice_id, issued_on, due_at FROM invoices
ORDER BY issued_on, due_at DESC NULLS FIRST, customer_id, invoice_id LIMIT 10`, ordered: true},
	{name: "limit_offset_params", sql: `SELECT customer_id, invoice_id, total_minor FROM invoices
ORDER BY total_minor DESC, customer_id, invoice_id LIMIT $1 OFFSET $2`, args: []any{int64(25), int64(10)}, ordered: true},
	{name: "where_param_ordered", sql: `SELECT customer_id, invoice_id, total_minor, issued_on FROM invoices
WHERE status = $1 ORDER BY issued_on, customer_id, invoice_id LIMIT 50`, args: []any{"open"}, ordered: true},
	{name: "order_whole_table", sql: `SELECT customer_id, name, tier FROM customers ORDER BY tier, name, customer_id`, ordered: true},

	// Plain concatenation (compared as multisets).
	{name: "concat_customers", sql: `SELECT customer_id, name, tier, country, created_at FROM customers`},
	{name: "concat_invoices_all_types", sql: `SELECT * FROM invoices`},
	{name: "concat_where_params", sql: `SELECT customer_id, invoice_id, number, due_at FROM invoices WHERE status = $1 AND currency = $2`,
		args: []any{"void", "JPY"}},

	// Co-located joins.
	{name: "join_lines", sql: `SELECT i.customer_id, i.invoice_id, i.number, l.line_no, l.description, l.quantity * l.unit_price_minor AS amount
FROM invoices i JOIN invoice_lines l ON l.customer_id = i.customer_id AND l.invoice_id = i.invoice_id
WHERE i.status = 'open'`},
	{name: "join_lines_ordered_limit", sql: `SELECT i.customer_id, i.invoice_id, l.line_no, l.quantity * l.unit_price_minor AS amount
FROM invoices i JOIN invoice_lines l ON l.customer_id = i.customer_id AND l.invoice_id = i.invoice_id
ORDER BY amount DESC, i.customer_id, i.invoice_id, l.line_no LIMIT 50 OFFSET 20`, ordered: true},
	{name: "join_aggregate", sql: `SELECT i.currency, count(*), sum(l.quantity * l.unit_price_minor), min(l.description)
FROM invoices i JOIN invoice_lines l ON l.customer_id = i.customer_id AND l.invoice_id = i.invoice_id
GROUP BY i.currency ORDER BY i.currency`, ordered: true},
	{name: "join_customers_left", sql: `SELECT c.customer_id, c.name, count(i.invoice_id), sum(i.total_minor)
FROM customers c LEFT JOIN invoices i ON i.customer_id = c.customer_id GROUP BY c.customer_id, c.name`},

	// Empty results.
	{name: "zero_rows", sql: `SELECT customer_id, invoice_id FROM invoices WHERE total_minor < 0`, noRows: true},
	{name: "zero_rows_param", sql: `SELECT customer_id, name FROM customers WHERE tier = $1 ORDER BY customer_id`,
		args: []any{"no-such-tier"}, ordered: true, noRows: true},
	{name: "zero_rows_offset_past_end", sql: `SELECT customer_id FROM customers ORDER BY customer_id LIMIT 5 OFFSET 100000000`,
		ordered: true, noRows: true},
	{name: "zero_groups", sql: `SELECT status, count(*) FROM invoices WHERE total_minor < 0 GROUP BY status`, noRows: true},
	{name: "aggregates_over_empty_set", sql: `SELECT count(*), count(weight), sum(total_minor), sum(paid_minor), sum(weight),
	min(issued_on), max(due_at), min(number), avg(total_minor), avg(weight) FROM invoices WHERE total_minor < 0`},
}

// unmergeableCases are keyless statements a merge of per-group results cannot answer
// (HAVING, window functions, DISTINCT aggregates). Through the proxy each must fail with
// SQLSTATE 0A000; on one plain Postgres each succeeds.
var unmergeableCases = []queryCase{
	{name: "having", sql: `SELECT status, count(*) FROM invoices GROUP BY status HAVING count(*) > 10`},
	{name: "having_param", sql: `SELECT currency, sum(total_minor) FROM invoices GROUP BY currency HAVING sum(total_minor) > $1`,
		args: []any{int64(1000)}},
	{name: "window_row_number", sql: `SELECT customer_id, invoice_id, row_number() OVER (ORDER BY total_minor, customer_id, invoice_id) FROM invoices`},
	{name: "window_partition", sql: `SELECT customer_id, invoice_id, sum(total_minor) OVER (PARTITION BY status) FROM invoices`},
	{name: "count_distinct", sql: `SELECT count(DISTINCT currency) FROM invoices`},
	{name: "sum_distinct", sql: `SELECT sum(DISTINCT total_minor) FROM invoices`},
}

// routedCases are statements keyed by customerID (literal and $1 forms), each of which the
// proxy must send to the one group owning it. HAVING, windows and DISTINCT aggregates are
// fine here: one group holds all the rows.
func routedCases(customerID int64) []queryCase {
	id := strconv.FormatInt(customerID, 10)
	firstInvoice := strconv.FormatInt(customerID*1000+1, 10)
	key := []any{customerID}
	return []queryCase{
		{name: "customer_literal", sql: `SELECT * FROM customers WHERE customer_id = ` + id},
		{name: "customer_param", sql: `SELECT name, tier, country, created_at FROM customers WHERE customer_id = $1`, args: key},
		{name: "invoices_param_ordered", sql: `SELECT * FROM invoices WHERE customer_id = $1 ORDER BY invoice_id`, args: key, ordered: true},
		{name: "invoices_in_literal", sql: `SELECT invoice_id, status, total_minor FROM invoices WHERE customer_id IN (` + id + `) ORDER BY invoice_id`, ordered: true},
		{name: "invoices_in_param", sql: `SELECT invoice_id, number, paid_minor FROM invoices WHERE customer_id IN ($1)`, args: key},
		{name: "lines_literal_two_keys", sql: `SELECT line_no, description, quantity FROM invoice_lines
WHERE customer_id = ` + id + ` AND invoice_id = ` + firstInvoice + ` ORDER BY line_no`, ordered: true},
		{name: "join_lines", sql: `SELECT i.invoice_id, i.number, l.line_no, l.description, l.quantity, l.unit_price_minor
FROM invoices i JOIN invoice_lines l ON l.customer_id = i.customer_id AND l.invoice_id = i.invoice_id
WHERE i.customer_id = $1 ORDER BY i.invoice_id, l.line_no`, args: key, ordered: true},
		{name: "left_join_customer", sql: `SELECT c.name, count(i.invoice_id), coalesce(sum(i.total_minor), 0)
FROM customers c LEFT JOIN invoices i ON i.customer_id = c.customer_id WHERE c.customer_id = $1 GROUP BY c.name`, args: key},
		{name: "aggregates", sql: `SELECT count(*), sum(total_minor), sum(paid_minor), avg(weight), min(issued_on), max(due_at)
FROM invoices WHERE customer_id = $1`, args: key},
		{name: "having_and_distinct", sql: `SELECT status, count(*), count(DISTINCT currency) FROM invoices
WHERE customer_id = $1 GROUP BY status HAVING count(*) >= 1 ORDER BY status`, args: key, ordered: true},
		{name: "window", sql: `SELECT invoice_id, sum(total_minor) OVER (ORDER BY invoice_id) FROM invoices
WHERE customer_id = ` + id + ` ORDER BY invoice_id`, ordered: true},
	}
}

// fixtureColumn describes one result column as it arrived: the name, the type OID and
// modifier, and the format code of its values (0 text, 1 binary). Table OIDs and attribute
// numbers are left out: they differ between databases holding the same table.
type fixtureColumn struct {
	Name    string
	TypeOID uint32
	TypeMod int32
	Format  int16
}

// result is everything a client sees of a statement's rows: columns, the raw value bytes of
// every row in arrival order (nil is NULL, a non-nil empty slice an empty value) and the
// command tag.
type result struct {
	Columns []fixtureColumn
	Rows    [][][]byte
	Tag     string
}

// queryResult runs c on conn in exec mode mode (pgx.QueryExecModeSimpleProtocol: simple
// protocol, text; QueryExecModeCacheStatement and friends: extended protocol, binary for the
// types pgx knows; QueryExecModeExec: extended protocol, text) and returns the raw result.
// The error, if any, wraps the server's *pgconn.PgError (see pgCode).
func queryResult(ctx context.Context, conn *pgx.Conn, mode pgx.QueryExecMode, c queryCase) (result, error) {
	rows, err := conn.Query(ctx, c.sql, append([]any{mode}, c.args...)...)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", c.name, err)
	}
	defer rows.Close()
	var res result
	columns := func() {
		if res.Columns != nil {
			return
		}
		for _, fd := range rows.FieldDescriptions() {
			res.Columns = append(res.Columns, fixtureColumn{Name: fd.Name, TypeOID: fd.DataTypeOID, TypeMod: fd.TypeModifier, Format: fd.Format})
		}
	}
	columns()
	for rows.Next() {
		columns()
		raw := rows.RawValues() // valid until the next call to Next
		row := make([][]byte, len(raw))
		for i, v := range raw {
			if v != nil {
				row[i] = append([]byte{}, v...)
			}
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return result{}, fmt.Errorf("%s: %w", c.name, err)
	}
	columns()
	res.Tag = rows.CommandTag().String()
	return res, nil
}

// fixtureMaxDiffRows bounds the rows a diff prints.
const fixtureMaxDiffRows = 5

// diffResults returns "" if got equals want, else a compact description of the differences:
// columns (name, type, modifier, format), command tag, and rows — in order when ordered,
// else as multisets.
func diffResults(want, got result, ordered bool) string {
	var b strings.Builder
	if !slices.Equal(want.Columns, got.Columns) {
		fmt.Fprintf(&b, "columns differ:\n  want %v\n  got  %v\n", want.Columns, got.Columns)
		return b.String() // rows of other columns are not comparable
	}
	if want.Tag != got.Tag {
		fmt.Fprintf(&b, "command tag: want %q, got %q\n", want.Tag, got.Tag)
	}
	m := pgtype.NewMap()
	show := func(row [][]byte) string { return fixtureFormatRow(m, want.Columns, row) }
	if ordered {
		n := max(len(want.Rows), len(got.Rows))
		shown, differing := 0, 0
		for i := range n {
			var w, g [][]byte
			if i < len(want.Rows) {
				w = want.Rows[i]
			}
			if i < len(got.Rows) {
				g = got.Rows[i]
			}
			if i < len(want.Rows) && i < len(got.Rows) && fixtureRowKey(w) == fixtureRowKey(g) {
				continue
			}
			differing++
			if shown < fixtureMaxDiffRows {
				shown++
				fmt.Fprintf(&b, "row %d:\n  want %s\n  got  %s\n", i, fixtureRowOrMissing(show, w, i < len(want.Rows)), fixtureRowOrMissing(show, g, i < len(got.Rows)))
			}
		}
		if differing > 0 {
			fmt.Fprintf(&b, "%d of %d/%d rows differ (want/got)\n", differing, len(want.Rows), len(got.Rows))
		}
		return b.String()
	}
	missing, extra := fixtureMultisetDiff(want.Rows, got.Rows)
	if len(missing)+len(extra) > 0 {
		fmt.Fprintf(&b, "as multisets: %d rows only in want, %d only in got (of %d/%d)\n", len(missing), len(extra), len(want.Rows), len(got.Rows))
		for i, r := range missing[:min(len(missing), fixtureMaxDiffRows)] {
			fmt.Fprintf(&b, "  only in want %d: %s\n", i, show(r))
		}
		for i, r := range extra[:min(len(extra), fixtureMaxDiffRows)] {
			fmt.Fprintf(&b, "  only in got  %d: %s\n", i, show(r))
		}
	}
	return b.String()
}

// assertSameResult fails t unless got equals want (see diffResults).
func assertSameResult(t testing.TB, name string, want, got result, ordered bool) {
	t.Helper()
	if d := diffResults(want, got, ordered); d != "" {
		t.Errorf("%s: result differs from the reference:\n%s", name, d)
	}
}

// fixtureMultisetDiff returns the rows of want missing from got and the rows of got missing from
// want, counting duplicates.
func fixtureMultisetDiff(want, got [][][]byte) (missing, extra [][][]byte) {
	type keyed struct {
		key string
		row [][]byte
	}
	sorted := func(rows [][][]byte) []keyed {
		ks := make([]keyed, len(rows))
		for i, r := range rows {
			ks[i] = keyed{fixtureRowKey(r), r}
		}
		slices.SortFunc(ks, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
		return ks
	}
	w, g := sorted(want), sorted(got)
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case j == len(g) || (i < len(w) && w[i].key < g[j].key):
			missing = append(missing, w[i].row)
			i++
		case i == len(w) || g[j].key < w[i].key:
			extra = append(extra, g[j].row)
			j++
		default:
			i++
			j++
		}
	}
	return missing, extra
}

// fixtureRowKey encodes a row injectively (NULL and empty differ) for equality and sorting.
func fixtureRowKey(row [][]byte) string {
	var b []byte
	for _, v := range row {
		if v == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return string(b)
}

// fixtureRowOrMissing prints row, or "(no row)" past the end of a result.
func fixtureRowOrMissing(show func([][]byte) string, row [][]byte, present bool) string {
	if !present {
		return "(no row)"
	}
	return show(row)
}

// fixtureMaxShownValue bounds how much of one value a diff prints.
const fixtureMaxShownValue = 80

// fixtureFormatRow prints a row for a diff: text values quoted, binary values decoded with pgx's
// type map and followed by their bytes in hex.
func fixtureFormatRow(m *pgtype.Map, cols []fixtureColumn, row [][]byte) string {
	parts := make([]string, len(row))
	for i, v := range row {
		var col fixtureColumn
		if i < len(cols) {
			col = cols[i]
		}
		parts[i] = fixtureFormatValue(m, col, v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// fixtureFormatValue prints one raw value of col.
func fixtureFormatValue(m *pgtype.Map, col fixtureColumn, v []byte) string {
	switch {
	case v == nil:
		return "NULL"
	case col.Format == pgtype.TextFormatCode:
		return fixtureShorten(strconv.Quote(string(v)))
	}
	raw := "0x" + hex.EncodeToString(v)
	typ, ok := m.TypeForOID(col.TypeOID)
	if !ok {
		return fixtureShorten(raw)
	}
	dv, err := typ.Codec.DecodeValue(m, col.TypeOID, col.Format, v)
	if err != nil {
		return fixtureShorten(raw) + "(undecodable: " + err.Error() + ")"
	}
	return fixtureShorten(fixtureDescribeValue(dv)) + "/" + fixtureShorten(raw)
}

// fixtureDescribeValue prints a decoded value readably.
func fixtureDescribeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return strconv.Quote(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case [16]byte:
		h := hex.EncodeToString(x[:])
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return fmt.Sprintf("%T(%v)", x, err)
		}
		return fmt.Sprint(dv)
	}
	return fmt.Sprint(v)
}

// fixtureShorten shortens s to at most fixtureMaxShownValue bytes, on a rune boundary.
func fixtureShorten(s string) string {
	if len(s) <= fixtureMaxShownValue {
		return s
	}
	cut := fixtureMaxShownValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// fixtureFirstLine returns s up to its first newline.
func fixtureFirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// assertRowsWhereTheyBelong checks, for each sharded table, that every group's writer holds
// only rows its group owns (owner(customer_id) == group name), that each customer's rows are
// all on its owner and as many as loaded (want.ByCustomer), and that the counts add up to
// want.Total. writers maps group name to a direct connection to that group's writer.
func assertRowsWhereTheyBelong(t testing.TB, ctx context.Context, writers map[string]*pgx.Conn, owner func(customerID int64) string, want rowCounts) {
	t.Helper()
	problems, err := checkRowsWhereTheyBelong(ctx, writers, owner, want)
	if err != nil {
		t.Fatalf("rows where they belong: %v", err)
	}
	if len(problems) > 0 {
		t.Errorf("rows not where they belong:\n  %s", strings.Join(problems, "\n  "))
	}
}

// fixtureMaxPlacementProblems bounds the problems checkRowsWhereTheyBelong lists per table.
const fixtureMaxPlacementProblems = 10

// checkRowsWhereTheyBelong is assertRowsWhereTheyBelong returning its findings: one line per
// problem (none when all is well); err reports a failed query.
func checkRowsWhereTheyBelong(ctx context.Context, writers map[string]*pgx.Conn, owner func(customerID int64) string, want rowCounts) ([]string, error) {
	groups := make([]string, 0, len(writers))
	for g := range writers {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	var problems []string
	for _, table := range invoiceTables {
		var tableProblems []string
		found := make(map[int64]map[string]int64) // customer → group → rows
		var total int64
		for _, g := range groups {
			rows, err := writers[g].Query(ctx, `SELECT customer_id, count(*) FROM `+table+` GROUP BY customer_id ORDER BY customer_id`)
			if err != nil {
				return nil, fmt.Errorf("%s on %s: %w", table, g, err)
			}
			var cid, n int64
			_, err = pgx.ForEachRow(rows, []any{&cid, &n}, func() error {
				if found[cid] == nil {
					found[cid] = make(map[string]int64)
				}
				found[cid][g] = n
				total += n
				if o := owner(cid); o != g {
					tableProblems = append(tableProblems, fmt.Sprintf("%s: %d row(s) of customer %d (shard %d, owner %s) on %s", table, n, cid, cid%16, o, g))
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("%s on %s: %w", table, g, err)
			}
		}
		for _, cid := range want.customerIDs() {
			w := want.ByCustomer[cid].of(table)
			if got := found[cid][owner(cid)]; got != w {
				tableProblems = append(tableProblems, fmt.Sprintf("%s: customer %d has %d row(s) on its owner %s, want %d", table, cid, got, owner(cid), w))
			}
		}
		for cid := range found {
			if _, ok := want.ByCustomer[cid]; !ok {
				tableProblems = append(tableProblems, fmt.Sprintf("%s: rows of customer %d, which was never loaded", table, cid))
			}
		}
		slices.Sort(tableProblems)
		if w := want.Total.of(table); total != w {
			tableProblems = slices.Insert(tableProblems, 0, fmt.Sprintf("%s: %d rows over all groups, want %d", table, total, w))
		}
		if len(tableProblems) > fixtureMaxPlacementProblems {
			tableProblems = append(tableProblems[:fixtureMaxPlacementProblems], fmt.Sprintf("%s: ... and %d more problems", table, len(tableProblems)-fixtureMaxPlacementProblems))
		}
		problems = append(problems, tableProblems...)
	}
	return problems, nil
}
