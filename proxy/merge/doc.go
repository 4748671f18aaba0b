// Package merge combines the replies of the shard groups to one scattered query into the
// reply one unsharded Postgres would send: it concatenates rows, merges sorted streams with
// a heap, combines partial COUNT/SUM/MIN/MAX/AVG aggregates by group, removes DISTINCT
// duplicates, and applies LIMIT and OFFSET, as a router.MergeSpec says.
//
// It works on raw wire frames (RowDescription, DataRow) in the text or binary format the
// client asked for, and writes values exactly as Postgres formats them (numeric scale and
// division rules, shortest float text). It does no I/O: a Source per group yields DataRow
// frames and an emit callback takes the client's. Values are ordered as Postgres's default
// operator classes order them; text is compared bytewise, which is the C collation's order
// (the proxy's databases use C; under another collation a group's rows arrive out of the
// merge's order, and the merge reports an error rather than a misordered result).
package merge
