package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus instruments. Label values are bounded: SQLSTATE codes,
// a fixed set of sources and results.
type metrics struct {
	clientsActive  prometheus.Gauge
	clientsWaiting prometheus.Gauge
	logins         *prometheus.CounterVec
	errors         *prometheus.CounterVec
	queryDuration  *prometheus.HistogramVec
	txDuration     prometheus.Histogram
	waitSeconds    prometheus.Histogram
	clientBytesIn  prometheus.Counter
	clientBytesOut prometheus.Counter
	cancels        *prometheus.CounterVec
	routed         *prometheus.CounterVec
	retries        *prometheus.CounterVec
	scatterFanout  prometheus.Histogram
	leaseRefusals  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, pools func() []*poolEntry) *metrics {
	m := &metrics{
		clientsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardwire_clients_active", Help: "Client connections logged in."}),
		clientsWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardwire_clients_waiting", Help: "Clients waiting for a server connection."}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_client_logins_total", Help: "Client login attempts by result."}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_errors_total", Help: "ErrorResponses sent to clients, by SQLSTATE and by who raised them (proxy or server)."},
			[]string{"sqlstate", "source"}),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shardwire_query_duration_seconds",
			Help: "Time from a client's request (Query or Sync) to its ReadyForQuery, by route: writer, replica (relayed to one backend), " +
				"scatter, broadcast (DDL on every group), cache (a read the cache answered or filled), split (a statement split over groups), " +
				"commit (the end of a transaction spanning groups); and by group, the backend's for writer and replica, empty for requests the proxy runs itself.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"route", "group"}),
		txDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shardwire_transaction_duration_seconds", Help: "Time a server connection stayed attached to a client in transaction mode.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20)}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shardwire_client_wait_seconds", Help: "Time clients waited for a server connection.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 12)}),
		clientBytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_client_received_bytes_total", Help: "Bytes received from clients."}),
		clientBytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_client_sent_bytes_total", Help: "Bytes sent to clients."}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_cancel_requests_total", Help: "CancelRequests by result: forwarded (to this node's backend), to_peer (sent on to the node that issued the key), held (a statement held for a shard being moved), unknown_key, idle, failed."}, []string{"result"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_routed_total", Help: "Server connections attached for routed work, by shard group and role (writer or replica)."},
			[]string{"group", "role"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardwire_read_retries_total", Help: "Reads moved to another endpoint of their group after the first one failed, by group."},
			[]string{"group"}),
		scatterFanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shardwire_scatter_fanout_groups", Help: "Shard groups each scattered statement ran on.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16}}),
		leaseRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardwire_lease_refusals_total", Help: "Statements refused (57P03) because the node's lease on its shard map had expired."}),
	}
	reg.MustRegister(m.routed, m.retries, m.scatterFanout, m.leaseRefusals)
	reg.MustRegister(m.clientsActive, m.clientsWaiting, m.logins, m.errors, m.queryDuration, m.txDuration,
		m.waitSeconds, m.clientBytesIn, m.clientBytesOut, m.cancels, &poolCollector{pools: pools})
	return m
}

// poolCollector reports every pool's state when scraped.
type poolCollector struct{ pools func() []*poolEntry }

var (
	poolServersDesc = prometheus.NewDesc("shardwire_pool_servers", "Server connections by pool and state.",
		[]string{"endpoint", "database", "user", "state"}, nil)
	poolSizeDesc = prometheus.NewDesc("shardwire_pool_size", "Configured server connection limit by pool.",
		[]string{"endpoint", "database", "user"}, nil)
	poolWaitingDesc = prometheus.NewDesc("shardwire_pool_waiting_clients", "Clients waiting by pool.",
		[]string{"endpoint", "database", "user"}, nil)
	poolOpenedDesc = prometheus.NewDesc("shardwire_pool_server_connects_total", "Server connections opened by pool.",
		[]string{"endpoint", "database", "user"}, nil)
	poolTimeoutsDesc = prometheus.NewDesc("shardwire_pool_wait_timeouts_total", "Clients that waited past query_wait_timeout, by pool.",
		[]string{"endpoint", "database", "user"}, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolServersDesc
	ch <- poolSizeDesc
	ch <- poolWaitingDesc
	ch <- poolOpenedDesc
	ch <- poolTimeoutsDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.pools() {
		st := e.pool.Stats()
		l := []string{st.Addr, st.Database, st.User}
		ch <- prometheus.MustNewConstMetric(poolServersDesc, prometheus.GaugeValue, float64(st.Active), append(l, "active")...)
		ch <- prometheus.MustNewConstMetric(poolServersDesc, prometheus.GaugeValue, float64(st.Idle), append(l, "idle")...)
		ch <- prometheus.MustNewConstMetric(poolSizeDesc, prometheus.GaugeValue, float64(st.Size), l...)
		ch <- prometheus.MustNewConstMetric(poolWaitingDesc, prometheus.GaugeValue, float64(st.Waiting), l...)
		ch <- prometheus.MustNewConstMetric(poolOpenedDesc, prometheus.CounterValue, float64(st.Opened), l...)
		ch <- prometheus.MustNewConstMetric(poolTimeoutsDesc, prometheus.CounterValue, float64(st.WaitTimeouts), l...)
	}
}
