-- Customers: one row per customer; customer_id is the shard key.
CREATE TABLE IF NOT EXISTS customers (
    customer_id bigint PRIMARY KEY CHECK (customer_id > 0),
    name text NOT NULL,
    tier text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'basic', 'premium', 'enterprise')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Invoices, partitioned by month of issue date (partitions invoices_YYYY_MM are created by
-- invoiceapp.MaintainPartitions and on demand). The primary key must contain the partition
-- key; ids are UUIDv7, unique without it.
CREATE TABLE IF NOT EXISTS invoices (
    customer_id bigint NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    id uuid NOT NULL,
    issue_date date NOT NULL,
    due_date date NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status text NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    total_minor bigint NOT NULL CHECK (total_minor >= 0),
    paid_minor bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    paid_at timestamptz,
    voided_at timestamptz,
    PRIMARY KEY (customer_id, issue_date, id),
    CHECK (paid_minor >= 0 AND paid_minor <= total_minor),
    CHECK (due_date >= issue_date),
    CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
    CHECK ((status = 'void') = (voided_at IS NOT NULL))
) PARTITION BY RANGE (issue_date);

-- Looking an invoice up by id.
CREATE INDEX IF NOT EXISTS invoices_customer_id_id_idx ON invoices (customer_id, id);

CREATE TABLE IF NOT EXISTS invoice_lines (
    customer_id bigint NOT NULL,
    invoice_id uuid NOT NULL,
    issue_date date NOT NULL,
    line_no int NOT NULL CHECK (line_no > 0),
    description text NOT NULL,
    quantity bigint NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    amount_minor bigint NOT NULL,
    PRIMARY KEY (customer_id, invoice_id, line_no),
    FOREIGN KEY (customer_id, issue_date, invoice_id)
        REFERENCES invoices (customer_id, issue_date, id) ON DELETE CASCADE,
    CHECK (amount_minor = quantity * unit_price_minor)
);

CREATE TABLE IF NOT EXISTS payments (
    customer_id bigint NOT NULL,
    id uuid NOT NULL,
    invoice_id uuid NOT NULL,
    issue_date date NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL,
    reference text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, id),
    FOREIGN KEY (customer_id, issue_date, invoice_id)
        REFERENCES invoices (customer_id, issue_date, id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS payments_customer_id_invoice_id_idx ON payments (customer_id, invoice_id);

-- The first successful response of each idempotent request, keyed per customer.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    customer_id bigint NOT NULL,
    idem_key text NOT NULL,
    fingerprint bytea NOT NULL,
    status int NOT NULL DEFAULT 0,
    response bytea NOT NULL DEFAULT '',
    location text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, idem_key)
);

CREATE INDEX IF NOT EXISTS idempotency_keys_created_at_idx ON idempotency_keys (created_at);
