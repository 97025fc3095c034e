package store

import "github.com/prometheus/client_golang/prometheus"

// Collectors returns gauges read from the store at scrape time: Badger's size and
// the durable open-order count.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orderwatch_badger_size_bytes",
			Help: "Badger's on-disk size (LSM tree and value log), as Badger last measured it.",
		}, func() float64 { return float64(s.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orderwatch_open_orders",
			Help: "Orders created and not yet shipped or cancelled (durable counter).",
		}, func() float64 {
			st, err := s.Stats()
			if err != nil {
				return -1
			}
			return float64(st.OpenOrders)
		}),
	}
}
