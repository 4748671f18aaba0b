package proxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shardwire/shardwire/config"
)

func TestSmoke(t *testing.T) {
	p := startProxy(t, func(c *config.Config) { c.Pool.DefaultPoolSize = 2 })
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
		c := connect(t, p.dsn("default_query_exec_mode="+modeName(mode)))
		for i := range 3 {
			if got := mustQueryInt(t, c, "select $1::int8 + 1", int64(i)); got != int64(i+1) {
				t.Fatalf("mode %v: got %d", mode, got)
			}
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "create table if not exists smoke_x(a int)"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func modeName(m pgx.QueryExecMode) string {
	switch m {
	case pgx.QueryExecModeCacheStatement:
		return "cache_statement"
	case pgx.QueryExecModeCacheDescribe:
		return "cache_describe"
	case pgx.QueryExecModeDescribeExec:
		return "describe_exec"
	case pgx.QueryExecModeExec:
		return "exec"
	}
	return "simple_protocol"
}
