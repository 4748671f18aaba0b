// Command idleconns opens many authenticated Postgres connections (pgx/v5/pgconn) to one
// address and holds them idle, so that a proxy's memory per client connection can be measured.
//
//	go run ./bench/idleconns -dsn 'postgres://app:app@127.0.0.1:6432/app?sslmode=disable' -n 10000
//
// It prints "up N" once every connection has authenticated and received ReadyForQuery, then
// holds them until -hold elapses, stdin reaches EOF or a line, or SIGINT/SIGTERM arrives; then
// it closes them and exits. Connection failures are counted and the first few are printed; the
// exit status is 1 if any connection failed.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func main() {
	dsn := flag.String("dsn", "postgres://app:app@127.0.0.1:6432/app?sslmode=disable", "connection string")
	n := flag.Int("n", 10000, "connections to open")
	par := flag.Int("parallel", 32, "connections opened concurrently")
	hold := flag.Duration("hold", 0, "how long to hold the connections once all are up; 0 until stdin or a signal")
	ping := flag.Bool("ping", false, "run one empty query on each connection after connecting")
	flag.Parse()

	cfg, err := pgconn.ParseConfig(*dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	conns := make([]*pgconn.PgConn, *n)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *n || ctx.Err() != nil {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				c, err := pgconn.ConnectConfig(cctx, cfg)
				if err == nil && *ping {
					err = c.Exec(cctx, ";").Close()
				}
				cancel()
				if err != nil {
					if failed.Add(1) <= 5 {
						fmt.Fprintf(os.Stderr, "idleconns: connection %d: %v\n", i, err)
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	up := int64(*n) - failed.Load()
	fmt.Printf("up %d failed %d in %.1fs\n", up, failed.Load(), time.Since(start).Seconds())

	done := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		close(done)
	}()
	var timeout <-chan time.Time
	if *hold > 0 {
		timeout = time.After(*hold)
	}
	select {
	case <-ctx.Done():
	case <-done:
	case <-timeout:
	}

	for _, c := range conns {
		if c != nil {
			_ = c.Close(context.Background())
		}
	}
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
