package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardwire/shardwire/cluster"
	"github.com/shardwire/shardwire/shardmap"
)

var (
	memberEpochDesc = prometheus.NewDesc("shardwire_cluster_member_epoch",
		"Shard map epoch each alive member serves, as its gossip metadata says.", []string{"member"}, nil)
	memberLeaseDesc = prometheus.NewDesc("shardwire_cluster_member_lease_ok",
		"1 if the alive member holds a valid lease on its shard map, else 0.", []string{"member"}, nil)
)

// memberCollector reports every alive member's epoch and lease when scraped.
type memberCollector struct{ c *cluster.Cluster }

// Describe sends the descriptors.
func (mc *memberCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- memberEpochDesc
	ch <- memberLeaseDesc
}

// Collect sends one sample per alive member.
func (mc *memberCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range mc.c.Members() {
		if m.State != cluster.StateAlive {
			continue
		}
		lease := 0.0
		if m.Meta.LeaseOK {
			lease = 1
		}
		ch <- prometheus.MustNewConstMetric(memberEpochDesc, prometheus.GaugeValue, float64(m.Meta.Epoch), m.Name)
		ch <- prometheus.MustNewConstMetric(memberLeaseDesc, prometheus.GaugeValue, lease, m.Name)
	}
}

var shardStateDesc = prometheus.NewDesc("shardwire_shardmap_shards",
	"Logical shards in the map this node serves, by state: active, moving (a move is copying it), frozen (its writes are held for a move's switch).",
	[]string{"state"}, nil)

// shardStateCollector reports how many shards of the node's map are in each state: a shard
// move in progress shows as moving or frozen.
type shardStateCollector struct{ store *shardmap.Store }

// Describe sends the descriptor.
func (sc *shardStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- shardStateDesc }

// Collect sends one sample per state.
func (sc *shardStateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[shardmap.ShardState]int{shardmap.StateActive: 0, shardmap.StateMoving: 0, shardmap.StateFrozen: 0}
	if m := sc.store.Current(); m != nil {
		for _, st := range m.State {
			counts[st]++
		}
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(shardStateDesc, prometheus.GaugeValue, float64(n), string(st))
	}
}
