// Package invoiceapp is the invoice platform's data layer: customers, invoices with their
// lines, payments and idempotency records, kept in Postgres behind one DSN (a shardwire
// proxy) and nothing shard-aware beyond putting customer_id in every statement.
//
// Every sharded table carries customer_id, and every statement names it with an equality,
// so shardwire routes it to the group owning customer_id % 16; a transaction only ever
// touches one customer. Invoices are partitioned by month of issue date (invoices_YYYY_MM);
// MaintainPartitions creates the coming months ahead of time and Store creates an older
// month's partition on demand. Ids are globally unique without sequences: invoices and
// payments get UUIDv7 ids, customers a caller-chosen or random id (see ids.go).
//
// Store methods that write run in one transaction on the customer's group; with an
// IdempotencyKey the first successful response is stored in that same transaction (see
// Store.Do). Reads outside a transaction may be served by a replica and can lag a write by
// up to the proxy's replica-lag bound.
package invoiceapp
