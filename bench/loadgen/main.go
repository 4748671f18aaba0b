package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit statuses.
const (
	exitOK        = 0
	exitFailure   = 1 // the run could not be done (bad target, setup failed, interrupted)
	exitUsage     = 2 // bad flags
	exitSLOMissed = 3 // the run finished and missed --slo
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed flags.
type options struct {
	target       string
	load         Load
	arrival      string
	customers    int64
	zipfS        float64
	mix          Mix
	jsonPath     string
	slo          SLO
	timeout      time.Duration
	setup        bool
	setupDSN     string
	setupWorkers int
	tiers        TierMix
}

// parseFlags reads args into options.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{mix: DefaultMix(), tiers: DefaultTierMix()}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.target, "target", "", "invoiced base URL, e.g. http://127.0.0.1:8080 (required)")
	fs.Float64Var(&o.load.Rate, "rate", 0, "open loop: start this many requests per second, whatever the answers")
	fs.StringVar(&o.arrival, "arrival", "poisson", "open-loop spacing: poisson (exponential gaps) or fixed (exactly 1/rate)")
	fs.IntVar(&o.load.Workers, "workers", 0, "closed loop: this many workers, each sending its next request when answered")
	fs.DurationVar(&o.load.Duration, "duration", 30*time.Second, "measured time")
	fs.DurationVar(&o.load.Warmup, "warmup", 5*time.Second, "unmeasured time before it")
	fs.IntVar(&o.load.MaxInFlight, "max-inflight", 4096, "open loop: most requests outstanding at once (latency still counts from the intended start)")
	fs.DurationVar(&o.load.Drain, "drain", 10*time.Second, "after the measured time, how long outstanding requests may still finish")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.Int64Var(&o.customers, "customers", 100_000, "customers 1..N the load is spread over")
	fs.Float64Var(&o.zipfS, "zipf-s", 1.1, "Zipf exponent of customer popularity (0: uniform)")
	fs.Uint64Var(&o.load.Seed, "seed", 1, "seed of the drawn request sequence")
	fs.Func("mix", "request mix as route=weight,... (default "+DefaultMix().String()+")", func(s string) (err error) {
		o.mix, err = ParseMix(s)
		return err
	})
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file (- for stdout; the table then goes to stderr)")
	fs.Func("slo", "exit with status 3 when missed, e.g. p95=200ms,p99=500ms,errors=0.1% (also pNN.N, max, limited=share of 429s)", func(s string) (err error) {
		o.slo, err = ParseSLO(s)
		return err
	})
	fs.BoolVar(&o.setup, "setup", false, "first create customers 1..N that do not exist (without --rate or --workers: only that)")
	fs.StringVar(&o.setupDSN, "setup-dsn", "", "--setup through invoiceapp.Store on this database DSN (the proxy) instead of POST /v1/customers, which is rate-limited per client address")
	fs.IntVar(&o.setupWorkers, "setup-workers", 16, "concurrent requests during --setup")
	fs.Func("tier-mix", "share of customers per tier for --setup, given to the most popular first (default "+DefaultTierMix().String()+")", func(s string) (err error) {
		o.tiers, err = ParseTierMix(s)
		return err
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.setupDSN != "" && !o.setup {
		return nil, errors.New("--setup-dsn needs --setup")
	}
	if o.target == "" {
		return nil, errors.New("--target is required")
	}
	switch o.arrival {
	case "poisson":
		o.load.Arrival = ArrivalPoisson
	case "fixed":
		o.load.Arrival = ArrivalFixed
	default:
		return nil, fmt.Errorf("--arrival %q: want poisson or fixed", o.arrival)
	}
	if o.timeout <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	if !o.setup || o.load.Rate > 0 || o.load.Workers > 0 {
		l := o.load
		if err := l.normalize(); err != nil {
			return nil, err
		}
	}
	return o, nil
}

const usage = `loadgen drives invoiced (docs/openapi.yaml) with the invoice platform's request mix and
reports throughput, latency percentiles and errors per route.

  loadgen --target http://127.0.0.1:8080 --setup --setup-dsn postgres://app:app@127.0.0.1:6432/app
  loadgen --target http://127.0.0.1:8080 --rate 200 --duration 30s --slo p95=200ms,p99=500ms,errors=0.1%
  loadgen --target http://127.0.0.1:8080 --workers 32 --json out.json

Exit status: 0 done, 1 failed or interrupted, 2 bad flags, 3 the run missed --slo.

`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return exitUsage
	}
	zipf, err := NewZipf(o.customers, o.zipfS)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return exitUsage
	}
	hc := NewHTTPClient(max(o.load.MaxInFlight, o.load.Workers, o.setupWorkers))
	hc.Timeout = o.timeout
	api, err := NewAPI(o.target, hc, zipf, o.mix)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return exitUsage
	}
	if o.setup {
		var cc CustomerCreator = httpCreator{api}
		if o.setupDSN != "" {
			sc, pool, err := newStoreCreator(ctx, o.setupDSN, o.setupWorkers)
			if err != nil {
				fmt.Fprintln(stderr, "loadgen:", err)
				return exitFailure
			}
			defer pool.Close()
			cc = sc
		}
		st, err := Setup(ctx, cc, zipf, o.tiers, o.setupWorkers, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return exitFailure
		}
		fmt.Fprintf(stderr, "setup: %d customers created, %d existed, in %.1fs (tiers %s)\n",
			st.Created, st.Existed, st.Elapsed.Seconds(), o.tiers)
		if o.load.Rate <= 0 && o.load.Workers <= 0 {
			return exitOK
		}
	}
	res, err := Run(ctx, o.load, api)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return exitFailure
	}
	rep := NewReport(res, RunInfo{Target: o.target, Customers: o.customers, ZipfS: o.zipfS, Mix: o.mix}, o.slo)
	table := stdout
	if o.jsonPath == "-" {
		table = stderr
	}
	if err := rep.WriteTable(table); err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return exitFailure
	}
	if o.jsonPath != "" {
		if err := writeJSON(rep, o.jsonPath, stdout); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return exitFailure
		}
	}
	switch {
	case res.Interrupted:
		return exitFailure
	case rep.SLO != nil && !rep.SLO.Met:
		return exitSLOMissed
	}
	return exitOK
}

// writeJSON writes the report to path, or to stdout for "-".
func writeJSON(rep *Report, path string, stdout io.Writer) error {
	if path == "-" {
		return rep.WriteJSON(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	return nil
}
