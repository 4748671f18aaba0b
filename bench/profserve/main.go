// Command profserve runs one shardwire proxy node like `shardwire serve`, with profiling added,
// for the benchmarks in bench/ (the shipped binary has no profiling switch).
//
//	go build -o /tmp/profserve ./bench/profserve
//	/tmp/profserve -config node.yaml -cpuprofile cpu.pprof -heapprofile heap.pprof
//
// The CPU profile covers the process's whole life and is written at SIGINT/SIGTERM. SIGUSR1
// writes a heap profile (in-use memory after a GC) to -heapprofile, e.g. while idle clients are
// connected. There is no admin listener and no SIGHUP reload.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/config"
	"github.com/shardwire/shardwire/proxy"
)

func main() {
	path := flag.String("config", "", "node configuration (YAML)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here at exit")
	heapProfile := flag.String("heapprofile", "", "write a heap profile here on SIGUSR1")
	flag.Parse()
	if err := run(*path, *cpuProfile, *heapProfile); err != nil {
		fmt.Fprintln(os.Stderr, "profserve:", err)
		os.Exit(1)
	}
}

func run(path, cpuProfile, heapProfile string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log, err := zap.NewProduction(zap.IncreaseLevel(zap.WarnLevel))
	if err != nil {
		return err
	}
	srv, err := proxy.New(cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			if err := writeHeap(heapProfile); err != nil {
				fmt.Fprintln(os.Stderr, "profserve: heap profile:", err)
			}
		}
	}()
	err = srv.Serve(ctx, ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func writeHeap(path string) error {
	if path == "" {
		return fmt.Errorf("no -heapprofile given")
	}
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}
