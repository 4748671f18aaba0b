// Command loadgen is the invoice platform's load generator: it drives invoiced over HTTP with
// the platform's request mix and reports throughput, latency percentiles and error rates per
// route, as an aligned table and as JSON.
//
// # Load
//
// With --rate R it runs an open loop: requests start at R per second whatever the answers,
// spaced by exponential gaps (--arrival poisson, the default, as many independent users
// would) or exactly 1/R apart (--arrival fixed). Each request's latency runs from its
// intended start, so when the target (or loadgen itself) falls behind, the queueing is
// counted, not hidden (no coordinated omission); the report also shows how late requests
// were sent. Requests still unanswered --drain after the end, or never sent by then, count
// as errors. With --workers N it runs a closed loop instead: N workers, each sending its next
// request when the previous one is answered. --warmup runs unmeasured first; only requests
// starting in the --duration after it are measured.
//
// # Workload
//
// The mix (--mix) is list invoices 40 %, get invoice 25 %, summary 10 %, create invoice 15 %,
// record payment 10 %. Customers are 1..--customers, drawn from a Zipf distribution of
// exponent --zipf-s over popularity ranks; ranks map to customer ids through a fixed
// permutation, so the hottest customers are spread over the logical shards. Gets and payments
// need invoice ids: loadgen keeps a bounded sample of open invoices per customer (the newest
// 8) fed by the invoices it creates, lists and reads, plus a ring of the 4096 last seen; a
// get or payment for a customer with none known uses one from the ring, and before any is
// known it becomes a listing. Payments pay the balance last seen, in full or half of it. Every
// POST carries a fresh Idempotency-Key. 409 answers (a payment racing another one on the same
// invoice) and 429 answers (rate limits) are expected and counted in their own columns; every
// other non-2xx answer, and every request without an answer, is an error.
//
// # Setup
//
// --setup first creates customers 1..N that do not exist yet, through POST /v1/customers
// (waiting out 429s), or with --setup-dsn through invoiceapp.Store over that DSN (the
// proxy): the same code invoiced runs, without the HTTP layer's per-client-address limit on
// creating customers (the free plan's), which would make 100,000 customers take days.
// Tiers follow popularity: with --tier-mix enterprise=90,premium=5,basic=3,free=2 (the
// default) the most popular 90 % of customers are enterprise, the least popular 2 % free, so
// the hot customers have the largest plans and rate limits do not dominate the measurement
// unless --tier-mix says otherwise. Existing customers keep their tier.
//
// # SLO
//
// --slo p95=200ms,p99=500ms,errors=0.1% checks the total and exits with status 3 when any
// bound is missed; --json FILE writes the report, verdict included, for scripts
// (bench/invoice-load.sh).
package main
