package twopc

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the action label of shardwire_twopc_recovered_total.
const (
	actionCommit   = "commit"
	actionRollback = "rollback"
)

// catalogLabel is the group label value of errors met on the catalog itself.
const catalogLabel = ""

// metrics holds a Recovery's collectors. The group label takes the names of the scanned
// groups (bounded by the shard map) and catalogLabel.
type metrics struct {
	recovered *prometheus.CounterVec
	inDoubt   prometheus.Gauge
	leader    prometheus.Gauge
	errors    *prometheus.CounterVec
}

// newMetrics creates the collectors and registers them in reg unless it is nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_twopc_recovered_total",
			Help: "Prepared transaction branches the two-phase recovery finished, by action: commit (COMMIT PREPARED of a committed transaction) or rollback (ROLLBACK PREPARED of an aborted or unrecorded one).",
		}, []string{"action"}),
		inDoubt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardwire_twopc_in_doubt",
			Help: "shardwire prepared transactions seen on the shard groups by this node's last recovery pass (0 when this node is not the recovery leader).",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardwire_twopc_recovery_leader",
			Help: "1 when this node holds the two-phase recovery leadership (the catalog advisory lock), else 0.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_twopc_recovery_errors_total",
			Help: "Failures of the two-phase recovery, by shard group (unreachable, or a resolution refused); group=\"\" counts failures of the catalog.",
		}, []string{"group"}),
	}
	for _, a := range []string{actionCommit, actionRollback} {
		m.recovered.WithLabelValues(a)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.recovered, m.inDoubt, m.leader, m.errors} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("metrics already registered (one Recovery per registry): %w", err)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
