package devcluster

import (
	"context"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/shardwire/shardwire/node"
)

// startInProcess runs n in this process with node.New and node.Serve until ctx ends. Serve
// errors other than a stop are reported; wait is done when Serve has returned.
func (c *Cluster) startInProcess(ctx context.Context, n *Node, log *zap.Logger, version string) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	nd, err := node.New(n.Config, node.Options{Log: log.With(zap.String("node", n.Name)), Registry: reg, Version: version})
	if err != nil {
		return fmt.Errorf("devcluster: proxy %s: %w", n.Name, err)
	}
	ln, err := net.Listen("tcp", n.Addr)
	if err != nil {
		nd.Close()
		return fmt.Errorf("devcluster: proxy %s: %w", n.Name, err)
	}
	adminLn, err := net.Listen("tcp", n.Admin)
	if err != nil {
		_ = ln.Close()
		nd.Close()
		return fmt.Errorf("devcluster: proxy %s admin: %w", n.Name, err)
	}
	n.Proxy = nd.Proxy()
	n.Registry = reg
	n.served = make(chan struct{})
	c.wg.Go(func() {
		defer close(n.served)
		if err := nd.Serve(ctx, ln, adminLn); err != nil {
			c.report(fmt.Errorf("proxy %s: %w", n.Name, err))
		}
	})
	return nil
}
