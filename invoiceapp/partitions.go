package invoiceapp

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/invoiceapp/migrations"
)

// DefaultMonthsAhead is how many months after the current one MaintainPartitions prepares.
const DefaultMonthsAhead = 3

// PartitionName returns the name of the invoices partition holding day's month:
// invoices_YYYY_MM.
func PartitionName(day Date) string {
	return fmt.Sprintf("invoices_%04d_%02d", day.Year(), int(day.Month()))
}

// partitionDDL creates day's month partition unless it exists. Through shardwire, DDL on a
// sharded table runs on every shard group.
func partitionDDL(day Date) string {
	start := day.MonthStart()
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF invoices FOR VALUES FROM ('%s') TO ('%s')`,
		PartitionName(start), start, start.AddMonths(1))
}

// MaintainPartitions creates the invoices partitions of now's month (UTC) and the monthsAhead
// months after it, on every shard group; partitions that exist are left alone, so it may run
// any number of times, from several processes at once.
func MaintainPartitions(ctx context.Context, db DB, now time.Time, monthsAhead int) error {
	if monthsAhead < 0 {
		return fmt.Errorf("maintain partitions: monthsAhead = %d, want >= 0", monthsAhead)
	}
	month := DateOf(now).MonthStart()
	for i := 0; i <= monthsAhead; i++ {
		if err := execDDL(ctx, db, partitionDDL(month.AddMonths(i))); err != nil {
			return fmt.Errorf("maintain partitions: %w", err)
		}
	}
	return nil
}

// EnsurePartition makes sure the partition for day's month exists, creating it when this
// Store has not seen it yet (invoices issued in months before the maintained window).
func (s *Store) EnsurePartition(ctx context.Context, day Date) error {
	name := PartitionName(day)
	s.mu.Lock()
	known := s.partitions[name]
	s.mu.Unlock()
	if known {
		return nil
	}
	if err := execDDL(ctx, s.db, partitionDDL(day)); err != nil {
		return fmt.Errorf("ensure partition %s: %w", name, err)
	}
	s.mu.Lock()
	s.partitions[name] = true
	s.mu.Unlock()
	s.log.Debug("invoices partition ready", zap.String("partition", name))
	return nil
}

// forgetPartition drops day's month from the partitions this Store knows.
func (s *Store) forgetPartition(day Date) {
	s.mu.Lock()
	delete(s.partitions, PartitionName(day))
	s.mu.Unlock()
}

// execDDL runs an idempotent DDL statement, retrying when a concurrent creator of the same
// object made it fail (migrations.ExecRetry), and names the statement in its error.
func execDDL(ctx context.Context, db DB, sql string) error {
	if err := migrations.ExecRetry(ctx, db, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}
