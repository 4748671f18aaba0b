package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardwire/shardwire/cluster"
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
