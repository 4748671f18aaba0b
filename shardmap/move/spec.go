package move

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/shardmap"
)

// NamePrefix starts the name of every publication, subscription and replication slot a
// move creates; Leftovers lists the objects whose names start with it.
const NamePrefix = "shardwire_move_"

// maxNameLen is the longest identifier Postgres keeps (NAMEDATALEN - 1).
const maxNameLen = 63

// Names returns the base names of a move's two replication directions: forward (source to
// target, "shardwire_move_<id>") and reverse (target to source, kept for a rollback after
// the switch, "shardwire_move_<id>_rev"). Each names a publication, its slot and its
// subscription.
func Names(move int64) (forward, reverse string) {
	forward = NamePrefix + strconv.FormatInt(move, 10)
	return forward, forward + "_rev"
}

// Spec describes one direction of replication of one shard between the writers of one
// database. A reverse direction is the same Spec with the sides swapped, Name the reverse
// name and CopyData false.
type Spec struct {
	// Move is the move's id in the catalog, used in messages and in the marker row.
	Move int64
	// Shard is the logical shard replicated.
	Shard shardmap.Shard
	// Tables are the database's sharded tables, each replicated with a row filter on its key.
	Tables []Table
	// Name is the base name of this direction's publication, slot and subscription, one of
	// the names Names returns.
	Name string
	// SourceConnInfo is the libpq connection string the target's subscription uses to reach
	// the source (host, port, user, password, dbname; a connect_timeout is advisable). Only
	// Replicate needs it.
	SourceConnInfo string
	// CopyData makes a new subscription copy the shard's existing rows before it streams;
	// false streams only the changes made after Replicate created the slot.
	CopyData bool
	// SourceGroup and TargetGroup name the groups, for messages only.
	SourceGroup, TargetGroup string
}

// validate checks what every function taking a Spec relies on.
func (s Spec) validate() error {
	var errs []error
	if s.Move <= 0 {
		errs = append(errs, fmt.Errorf("move id %d is not positive", s.Move))
	}
	if int(s.Shard) >= shardmap.NumShards {
		errs = append(errs, fmt.Errorf("shard %d out of range 0..%d", s.Shard, shardmap.NumShards-1))
	}
	if !strings.HasPrefix(s.Name, NamePrefix) || len(s.Name) > maxNameLen {
		errs = append(errs, fmt.Errorf("name %q must start with %q and be at most %d bytes", s.Name, NamePrefix, maxNameLen))
	}
	if err := validateTables(s.Tables); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// String names the direction for messages: "shardwire_move_7 (move 7, shard 5, g0 -> g1)".
func (s Spec) String() string {
	return fmt.Sprintf("%s (move %d, shard %d, %s -> %s)", s.Name, s.Move, s.Shard, groupName(s.SourceGroup), groupName(s.TargetGroup))
}

func groupName(g string) string {
	if g == "" {
		return "?"
	}
	return g
}

// validateTables checks that tables is not empty and names each table and key once.
func validateTables(tables []Table) error {
	if len(tables) == 0 {
		return errors.New("no tables")
	}
	seen := make(map[string]bool, len(tables))
	for _, t := range tables {
		if t.Name == "" || t.KeyColumn == "" {
			return fmt.Errorf("table %q with key %q: both must be set", t.Name, t.KeyColumn)
		}
		if seen[t.Name] {
			return fmt.Errorf("table %s listed twice", t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

// shardFilter is the SQL condition "the row whose key column is col (an expression such as
// NEW."customer_id") is in shard".
func shardFilter(col string, shard shardmap.Shard) string {
	return fmt.Sprintf("%s = %d", ShardExpr(col), shard)
}

// keyIdent returns t's key column quoted for SQL.
func (t Table) keyIdent() string { return pgx.Identifier{t.KeyColumn}.Sanitize() }

// quoteLiteral quotes s as an SQL string literal that reads the same whatever
// standard_conforming_strings is.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// description is the comment Replicate puts on a publication and a subscription: it says
// whose they are and fingerprints what the publication must contain, so a later call can
// tell whether its table list is up to date.
func (s Spec) description() string {
	parts := make([]string, len(s.Tables))
	for i, t := range s.Tables {
		parts[i] = t.Name + "(" + t.KeyColumn + ")"
	}
	return fmt.Sprintf("shardwire move %d shard %d %s: %s", s.Move, s.Shard, publicationVersion, strings.Join(parts, ", "))
}

// publicationVersion changes whenever the shape of the publications Replicate makes
// changes, so that existing ones are brought up to date.
const publicationVersion = "v2"

// describedShard matches the start of a description.
var describedShard = regexp.MustCompile(`^shardwire move (\d+) shard (\d+)\b`)

// parseDescription returns the move and shard a description names; ok is false for a
// comment Replicate did not write.
func parseDescription(d string) (move int64, shard int, ok bool) {
	m := describedShard.FindStringSubmatch(d)
	if m == nil {
		return 0, 0, false
	}
	move, err1 := strconv.ParseInt(m[1], 10, 64)
	shard, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return move, shard, true
}
