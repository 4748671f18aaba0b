package pool

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

func pgconnConnect(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	return pgconn.Connect(ctx, dsn)
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
