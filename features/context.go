package features

import (
	"time"
)

// Context holds the aggregates that are not per order: warehouse load, carrier
// performance and customer history, all by event time. It is small (one entry per
// warehouse, carrier and customer) and lives in memory; the pipeline persists the
// entries marked dirty with each batch. A Context is not safe for concurrent use.
type Context struct {
	Warehouses map[string]*Warehouse `json:"warehouses"`
	Carriers   map[string]*Carrier   `json:"carriers"`
	Customers  map[string]*Customer  `json:"customers"`

	dirty []ContextKey
}

// ContextKey names one context entry: kind is "warehouse", "carrier" or "customer".
type ContextKey struct{ Kind, ID string }

// Context entry kinds.
const (
	KindWarehouse = "warehouse"
	KindCarrier   = "carrier"
	KindCustomer  = "customer"
)

// Warehouse is the latest known state of one warehouse.
type Warehouse struct {
	Queue    float64 `json:"queue"`
	Capacity float64 `json:"capacity"` // picks per hour
	Outage   bool    `json:"outage"`
	Timezone string  `json:"timezone,omitempty"`
	Load     Stamp   `json:"load"` // the warehouse.load event that set the values
	// Picks counts pick confirmations per event-time minute over the last hour.
	Picks Window `json:"picks"`

	loc *time.Location
}

// Carrier is the latest known performance of one carrier.
type Carrier struct {
	OnTime float64 `json:"on_time"`
	Delay  float64 `json:"delay_minutes"`
	Perf   Stamp   `json:"perf"`
}

// Customer is one customer's history.
type Customer struct {
	Closed int `json:"closed"` // orders whose cutoff outcome is known
	Missed int `json:"missed"`
	Holds  int `json:"holds"`
}

// NewContext returns an empty context.
func NewContext() *Context {
	return &Context{Warehouses: map[string]*Warehouse{}, Carriers: map[string]*Carrier{}, Customers: map[string]*Customer{}}
}

// Dirty returns the entries changed since the last call and forgets them.
func (c *Context) Dirty(dst []ContextKey) []ContextKey {
	dst = append(dst, c.dirty...)
	c.dirty = c.dirty[:0]
	return dst
}

// Entry returns the entry of a key for persisting, or nil.
func (c *Context) Entry(k ContextKey) any {
	switch k.Kind {
	case KindWarehouse:
		return c.Warehouses[k.ID]
	case KindCarrier:
		return c.Carriers[k.ID]
	case KindCustomer:
		return c.Customers[k.ID]
	}
	return nil
}

func (c *Context) warehouse(id string) *Warehouse {
	w := c.Warehouses[id]
	if w == nil {
		w = &Warehouse{}
		c.Warehouses[id] = w
	}
	c.dirty = append(c.dirty, ContextKey{KindWarehouse, id})
	return w
}

func (c *Context) customer(id string) *Customer {
	u := c.Customers[id]
	if u == nil {
		u = &Customer{}
		c.Customers[id] = u
	}
	c.dirty = append(c.dirty, ContextKey{KindCustomer, id})
	return u
}

// Apply folds a context event (warehouse.load, carrier.performance); the latest by
// event time wins.
func (c *Context) Apply(ev *Event) {
	st := Stamp{ev.OccurredAt, ev.ID}
	d := &ev.Data
	switch ev.Type {
	case TypeWarehouseLoad:
		w := c.warehouse(d.Warehouse)
		if d.Timezone != "" && d.Timezone != w.Timezone {
			w.Timezone, w.loc = d.Timezone, nil
		}
		if st.After(w.Load) {
			w.Queue, w.Capacity, w.Outage, w.Load = float64(d.Queue), float64(d.Capacity), d.Outage, st
		}
	case TypeCarrierPerformance:
		r := c.Carriers[d.Carrier]
		if r == nil {
			r = &Carrier{OnTime: defaultOnTime}
			c.Carriers[d.Carrier] = r
		}
		c.dirty = append(c.dirty, ContextKey{KindCarrier, d.Carrier})
		if st.After(r.Perf) {
			if d.OnTimeShare != nil {
				r.OnTime = *d.OnTimeShare
			}
			r.Delay, r.Perf = d.DelayMinutes, st
		}
	}
}

// Observe updates the aggregates that order events feed: picks per warehouse,
// holds per customer. before is the order's state before the event was applied.
func (c *Context) Observe(ev *Event, s *OrderState) {
	switch ev.Type {
	case TypePickConfirmed:
		if s.Warehouse != "" {
			c.warehouse(s.Warehouse).Picks.Add(ev.OccurredAt)
		}
	case TypeCreditHold:
		if s.CustomerID != "" {
			c.customer(s.CustomerID).Holds++
		}
	}
}

// CountOutcome records, once per order, in its customer's history whether it met
// its cutoff: when it ships, or when its cutoff passes unshipped (moment >= cutoff).
func (c *Context) CountOutcome(s *OrderState, moment time.Time) {
	if s.MissCounted || !s.Known || s.Cancelled || s.CustomerID == "" {
		return
	}
	shipped := !s.ShippedAt.IsZero()
	if !shipped && moment.Before(s.ShipCutoff) {
		return
	}
	u := c.customer(s.CustomerID)
	u.Closed++
	if !shipped || s.ShippedAt.After(s.ShipCutoff) {
		u.Missed++
	}
	s.MissCounted = true
}

// location returns the warehouse's time zone, UTC when unknown or invalid.
func (w *Warehouse) location() *time.Location {
	if w.loc == nil {
		w.loc = time.UTC
		if w.Timezone != "" {
			if l, err := time.LoadLocation(w.Timezone); err == nil {
				w.loc = l
			}
		}
	}
	return w.loc
}

// Window counts events per event-time minute over the last hour. Events older
// than the window's newest minute by an hour or more are not counted.
type Window struct {
	Newest  int64       `json:"newest"` // unix minute of the newest bucket
	Buckets [60]float32 `json:"buckets"`
}

// Add counts one event at t.
func (w *Window) Add(t time.Time) {
	m := t.Unix() / 60
	switch {
	case m > w.Newest:
		if m-w.Newest >= 60 {
			w.Buckets = [60]float32{}
		} else {
			for i := w.Newest + 1; i <= m; i++ {
				w.Buckets[i%60] = 0
			}
		}
		w.Newest = m
	case w.Newest-m >= 60:
		return
	}
	w.Buckets[m%60]++
}

// Sum returns the events counted in the hour before t (by event time).
func (w *Window) Sum(t time.Time) float32 {
	m := t.Unix() / 60
	var sum float32
	for i := max(m-59, w.Newest-59); i <= min(m, w.Newest); i++ {
		sum += w.Buckets[((i%60)+60)%60]
	}
	return sum
}
