package move

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardwire/shardwire/internal/pgtest"
)

// cleanSchema is a correctly shaped set of sharded tables: the key leads every primary key,
// a schema-qualified table, and a partitioned table.
const cleanSchema = `
CREATE TABLE customers (customer_id bigint PRIMARY KEY, name text NOT NULL);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (customer_id bigint NOT NULL, id uuid NOT NULL, amount numeric(12,2), issued timestamptz,
	PRIMARY KEY (customer_id, id));
CREATE TABLE events (customer_id bigint NOT NULL, id bigint NOT NULL, body jsonb, PRIMARY KEY (customer_id, id))
	PARTITION BY HASH (customer_id);
CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
`

var cleanTables = []Table{
	{Name: "customers", KeyColumn: "customer_id"},
	{Name: "billing.invoices", KeyColumn: "customer_id"},
	{Name: "events", KeyColumn: "customer_id"},
}

func TestPrecheck(t *testing.T) {
	type want struct {
		side, table, check, message string // message: a substring
	}
	cases := []struct {
		name     string
		source   string
		target   string
		tables   []Table
		problems []want
		missing  []string
	}{{
		name:   "clean",
		source: cleanSchema,
		target: cleanSchema,
		tables: cleanTables,
	}, {
		name: "replica identity full and using index pass",
		source: `CREATE TABLE a (customer_id bigint NOT NULL, v text); ALTER TABLE a REPLICA IDENTITY FULL;
			CREATE TABLE b (customer_id bigint NOT NULL, id bigint NOT NULL);
			CREATE UNIQUE INDEX b_key ON b (id, customer_id); ALTER TABLE b REPLICA IDENTITY USING INDEX b_key;`,
		target: `CREATE TABLE a (customer_id bigint NOT NULL, v text);
			CREATE TABLE b (customer_id bigint NOT NULL, id bigint NOT NULL);`,
		tables: []Table{{"a", "customer_id"}, {"b", "customer_id"}},
	}, {
		name:   "replica identity lacks the key",
		source: `CREATE TABLE invoices (id uuid PRIMARY KEY, customer_id bigint NOT NULL)`,
		target: `CREATE TABLE invoices (id uuid PRIMARY KEY, customer_id bigint NOT NULL)`,
		tables: []Table{{"invoices", "customer_id"}},
		problems: []want{{SideSource, "invoices", CheckReplicaIdentity,
			"table invoices: replica identity (primary key (id)) lacks customer_id; make the key part of the primary key"}},
	}, {
		name: "replica identity index lacks the key, nothing, no primary key",
		source: `CREATE TABLE a (customer_id bigint NOT NULL, id bigint NOT NULL);
			CREATE UNIQUE INDEX a_id ON a (id); ALTER TABLE a REPLICA IDENTITY USING INDEX a_id;
			CREATE TABLE b (customer_id bigint PRIMARY KEY); ALTER TABLE b REPLICA IDENTITY NOTHING;
			CREATE TABLE c (customer_id bigint)`,
		target: `CREATE TABLE a (customer_id bigint NOT NULL, id bigint NOT NULL);
			CREATE TABLE b (customer_id bigint PRIMARY KEY);
			CREATE TABLE c (customer_id bigint)`,
		tables: []Table{{"a", "customer_id"}, {"b", "customer_id"}, {"c", "customer_id"}},
		problems: []want{
			{SideSource, "a", CheckReplicaIdentity, "table a: replica identity (index a_id (id)) lacks customer_id"},
			{SideSource, "b", CheckReplicaIdentity, "table b: replica identity is NOTHING"},
			{SideSource, "c", CheckReplicaIdentity, "table c: no primary key"},
		},
	}, {
		name:   "partition with a bad replica identity",
		source: cleanSchema + `ALTER TABLE events_p1 REPLICA IDENTITY NOTHING;`,
		target: cleanSchema,
		tables: cleanTables,
		problems: []want{{SideSource, "events", CheckReplicaIdentity,
			"table events (partition public.events_p1): replica identity is NOTHING"}},
	}, {
		name: "serial and identity columns",
		source: `CREATE TABLE invoices (customer_id bigint NOT NULL, id bigserial, PRIMARY KEY (customer_id, id));
			CREATE TABLE notes (customer_id bigint NOT NULL, n int GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (customer_id, n))`,
		target: `CREATE TABLE invoices (customer_id bigint NOT NULL, id bigint NOT NULL, PRIMARY KEY (customer_id, id));
			CREATE TABLE notes (customer_id bigint NOT NULL, n int NOT NULL, PRIMARY KEY (customer_id, n))`,
		tables: []Table{{"invoices", "customer_id"}, {"notes", "customer_id"}},
		problems: []want{
			{SideSource, "invoices", CheckSequence, "table invoices: column id takes its default from a sequence (nextval('invoices_id_seq'::regclass))"},
			{SideSource, "notes", CheckSequence, "table notes: column n is an identity column"},
		},
	}, {
		name:   "type, nullability and primary key mismatch",
		source: `CREATE TABLE invoices (customer_id bigint NOT NULL, id bigint NOT NULL, amount numeric, note text, PRIMARY KEY (customer_id, id))`,
		target: `CREATE TABLE invoices (customer_id bigint NOT NULL, id bigint NOT NULL, amount numeric(12,2), note text NOT NULL, PRIMARY KEY (customer_id))`,
		tables: []Table{{"invoices", "customer_id"}},
		problems: []want{
			{SideTarget, "invoices", CheckSchema, "table invoices: column amount is numeric on the source but numeric(12,2) on the target"},
			{SideTarget, "invoices", CheckSchema, "table invoices: column note is nullable on the source but NOT NULL on the target"},
			{SideTarget, "invoices", CheckSchema, "table invoices: primary key is (customer_id, id) on the source but (customer_id) on the target"},
		},
	}, {
		name:   "missing and extra column",
		source: `CREATE TABLE invoices (customer_id bigint NOT NULL, id bigint NOT NULL, amount numeric, PRIMARY KEY (customer_id, id))`,
		target: `CREATE TABLE invoices (customer_id bigint NOT NULL, id bigint NOT NULL, total numeric, PRIMARY KEY (customer_id, id))`,
		tables: []Table{{"invoices", "customer_id"}},
		problems: []want{
			{SideTarget, "invoices", CheckSchema, "table invoices: column amount (numeric) is missing on the target"},
			{SideTarget, "invoices", CheckSchema, "table invoices: column total (numeric) exists only on the target"},
		},
	}, {
		name:   "column order",
		source: `CREATE TABLE a (customer_id bigint PRIMARY KEY, x int, y int)`,
		target: `CREATE TABLE a (customer_id bigint PRIMARY KEY, y int, x int)`,
		tables: []Table{{"a", "customer_id"}},
		problems: []want{{SideTarget, "a", CheckSchema,
			"table a: columns are in a different order (source: customer_id, x, y; target: customer_id, y, x)"}},
	}, {
		name:    "table missing on target",
		source:  cleanSchema,
		target:  `CREATE TABLE customers (customer_id bigint PRIMARY KEY, name text NOT NULL)`,
		tables:  cleanTables,
		missing: []string{"billing.invoices", "events"},
	}, {
		name:   "partition missing on target",
		source: cleanSchema,
		target: strings.Replace(cleanSchema, "CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1);", "", 1),
		tables: cleanTables,
		problems: []want{{SideTarget, "events", CheckPartitions,
			"table events: partition public.events_p1 is missing on the target; create it: CREATE TABLE public.events_p1 PARTITION OF events FOR VALUES WITH (modulus 2, remainder 1)"}},
	}, {
		name:   "missing on source and missing key column",
		source: `CREATE TABLE a (id bigint PRIMARY KEY)`,
		target: `CREATE TABLE a (id bigint PRIMARY KEY)`,
		tables: []Table{{"a", "customer_id"}, {"nope", "customer_id"}},
		problems: []want{
			{SideSource, "a", CheckExists, "table a has no column customer_id on the source"},
			{SideSource, "nope", CheckExists, "table nope does not exist on the source"},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.source, tc.target)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := Precheck(ctx, p.source, p.target, tc.tables)
			if err != nil {
				t.Fatalf("Precheck: %v", err)
			}
			for _, w := range tc.problems {
				if !slices.ContainsFunc(r.Problems, func(got Problem) bool {
					return got.Side == w.side && got.Table == w.table && got.Check == w.check && strings.Contains(got.Message, w.message)
				}) {
					t.Errorf("missing problem %+v; got:\n%s", w, r.Error())
				}
			}
			if len(r.Problems) != len(tc.problems) {
				t.Errorf("got %d problems, want %d:\n%s", len(r.Problems), len(tc.problems), r.Error())
			}
			if r.OK() != (len(tc.problems) == 0) {
				t.Errorf("OK() = %v with problems:\n%s", r.OK(), r.Error())
			}
			if !slices.Equal(r.MissingOnTarget, tc.missing) {
				t.Errorf("MissingOnTarget = %q, want %q", r.MissingOnTarget, tc.missing)
			}
			if got := strings.Count(r.Error(), "\n"); len(r.Problems) > 0 && got != len(r.Problems)-1 {
				t.Errorf("Error() has %d lines, want one per problem:\n%s", got+1, r.Error())
			}
		})
	}
}

func TestWALLevelProblem(t *testing.T) {
	cases := []struct {
		side, level string
		bad         bool
		message     string
	}{
		{SideSource, "logical", false, ""},
		{SideTarget, "logical", false, ""},
		{SideSource, "replica", true, "source: wal_level is replica but must be logical (the move publishes the shard from the source); set wal_level = logical and restart the server"},
		{SideTarget, "minimal", true, "target: wal_level is minimal but must be logical (the reverse replication kept for a rollback publishes from the target); set wal_level = logical and restart the server"},
	}
	for _, tc := range cases {
		p, bad := walLevelProblem(tc.side, tc.level)
		if bad != tc.bad || p.Message != tc.message || (bad && (p.Side != tc.side || p.Check != CheckWALLevel)) {
			t.Errorf("walLevelProblem(%q, %q) = %+v, %v; want message %q, %v", tc.side, tc.level, p, bad, tc.message, tc.bad)
		}
	}
}

func TestCapacityProblems(t *testing.T) {
	roomy := sourceCapacity{maxSlots: 10, usedSlots: 2, maxSenders: 10, usedSenders: 1, seesAll: true}
	idle := targetCapacity{maxLogicalWorkers: 4, usedLogicalWorkers: 0, maxWorkers: 8, usedWorkers: 1, syncWorkersPerSubscription: 2, seesAll: true}
	cases := []struct {
		name   string
		src    sourceCapacity
		tgt    targetCapacity
		checks []string
		text   []string
	}{
		{name: "room", src: roomy, tgt: idle},
		{name: "exactly enough", src: sourceCapacity{maxSlots: 4, usedSlots: 2, maxSenders: 3, usedSenders: 1, seesAll: true},
			tgt: targetCapacity{maxLogicalWorkers: 2, maxWorkers: 3, usedWorkers: 1, syncWorkersPerSubscription: 1, seesAll: true}},
		{name: "slots", src: sourceCapacity{maxSlots: 10, usedSlots: 9, maxSenders: 10, seesAll: true}, tgt: idle,
			checks: []string{CheckSlots}, text: []string{"source: 9 of max_replication_slots = 10 in use, 1 free; a move needs 2"}},
		{name: "senders", src: sourceCapacity{maxSlots: 10, maxSenders: 5, usedSenders: 5, seesAll: true}, tgt: idle,
			checks: []string{CheckWALSenders}, text: []string{"source: 5 of max_wal_senders = 5 in use, 0 free"}},
		{name: "workers", src: roomy,
			tgt:    targetCapacity{maxLogicalWorkers: 4, usedLogicalWorkers: 3, maxWorkers: 8, usedWorkers: 8, syncWorkersPerSubscription: 0, seesAll: true},
			checks: []string{CheckWorkers, CheckWorkers, CheckWorkers},
			text: []string{"target: 3 of max_logical_replication_workers = 4 running, 1 free",
				"target: 8 of max_worker_processes = 8 running, 0 free", "max_sync_workers_per_subscription = 0"}},
		{name: "blind role", src: sourceCapacity{maxSlots: 10, maxSenders: 1, usedSenders: 1},
			tgt:    targetCapacity{maxLogicalWorkers: 4, maxWorkers: 8, syncWorkersPerSubscription: 2},
			checks: []string{CheckPrivileges, CheckPrivileges},
			text: []string{"source: the role cannot see other sessions' process types, so WAL senders in use cannot be counted",
				"target: the role cannot see other sessions' process types, so background workers running cannot be counted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := capacityProblems(tc.src, tc.tgt)
			if len(got) != len(tc.checks) {
				t.Fatalf("got %+v, want checks %v", got, tc.checks)
			}
			for i, p := range got {
				if p.Check != tc.checks[i] || !strings.Contains(p.Message, tc.text[i]) {
					t.Errorf("problem %d = %+v, want check %s containing %q", i, p, tc.checks[i], tc.text[i])
				}
			}
		})
	}
}

// TestPrecheckLiveCapacity checks the capacity queries against a real server: a test
// cluster has room for a move, and a slot taken on the source is counted.
func TestPrecheckLiveCapacity(t *testing.T) {
	p := newPair(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := readSourceCapacity(ctx, p.source)
	if err != nil {
		t.Fatal(err)
	}
	if before.maxSlots != 20 || before.maxSenders != 20 {
		t.Errorf("source capacity %+v, want 20 slots and senders as pgtest configures", before)
	}
	tgt, err := readTargetCapacity(ctx, p.target)
	if err != nil {
		t.Fatal(err)
	}
	if tgt.maxLogicalWorkers < 2 || tgt.usedWorkers < 1 {
		t.Errorf("target capacity %+v: want room and the logical replication launcher counted", tgt)
	}
	admin := newAdmin(t)
	exec(t, admin, `SELECT pg_create_logical_replication_slot('move_precheck_test', 'pgoutput')`)
	t.Cleanup(func() { exec(t, admin, `SELECT pg_drop_replication_slot('move_precheck_test')`) })
	after, err := readSourceCapacity(ctx, p.source)
	if err != nil {
		t.Fatal(err)
	}
	if after.usedSlots != before.usedSlots+1 {
		t.Errorf("used slots %d after creating one, want %d", after.usedSlots, before.usedSlots+1)
	}
	r, err := Precheck(ctx, p.source, p.target, nil)
	if err != nil || !r.OK() {
		t.Errorf("Precheck on an empty pair = %v, %v; want OK", r, err)
	}

	// A role without pg_read_all_stats is told so rather than given counts that miss
	// other roles' processes.
	const blind = "move_blind"
	for _, g := range cluster.Groups {
		a := pgtest.Connect(t, g.Writer.SuperDSN("postgres"))
		exec(t, a, "DROP ROLE IF EXISTS "+blind)
		exec(t, a, "CREATE ROLE "+blind+" LOGIN PASSWORD 'blind'")
		t.Cleanup(func() { exec(t, a, "DROP ROLE "+blind) })
	}
	src := pgtest.Connect(t, cluster.Groups[0].Writer.DSN(blind, "blind", "postgres"))
	dst := pgtest.Connect(t, cluster.Groups[1].Writer.DSN(blind, "blind", "postgres"))
	r, err = Precheck(ctx, src, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 2 || r.Problems[0].Check != CheckPrivileges || r.Problems[1].Check != CheckPrivileges {
		t.Errorf("Precheck as a role without pg_read_all_stats = %+v, want two %s problems", r.Problems, CheckPrivileges)
	}
}
