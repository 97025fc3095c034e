package features

import (
	"encoding/json"
	"math"
)

// Context aggregates are stored as JSON with each batch and read back when the
// pipeline starts. Releases before the bounds (bounds.go) stored whatever a
// producer sent (an on-time share of 1e308, a negative queue), and a restart read
// it back into the features of every order of that carrier or warehouse. So each
// aggregate puts itself back within the bounds of the events that feed it when it
// is decoded (UnmarshalJSON calls Sanitize): a value out of range is clamped into
// it, a number that is not finite takes the aggregate's default, a label that is
// not one is dropped.

// Sanitize puts w's values within the bounds of warehouse.load events.
func (w *Warehouse) Sanitize() {
	w.Queue = clamp64(finite(w.Queue, 0), rangeQueue.lo, rangeQueue.hi)
	w.Capacity = clamp64(finite(w.Capacity, 0), rangeCapacity.lo, rangeCapacity.hi)
	if !goodLabel(w.Timezone, maxLabelBytes) {
		w.Timezone = ""
	}
	w.loc = nil
	for i, n := range w.Picks.Buckets {
		if !(n >= 0) || math.IsInf(float64(n), 0) { // NaN, negative or infinite
			w.Picks.Buckets[i] = 0
		}
	}
}

// Sanitize puts r's values within the bounds of carrier.performance events.
func (r *Carrier) Sanitize() {
	r.OnTime = clamp64(finite(r.OnTime, defaultOnTime), rangeOnTimeShare.lo, rangeOnTimeShare.hi)
	r.Delay = clamp64(finite(r.Delay, 0), rangeDelayMinutes.lo, rangeDelayMinutes.hi)
}

// Sanitize makes u's counts non-negative, with no more misses than orders.
func (u *Customer) Sanitize() {
	u.Closed, u.Holds = max(u.Closed, 0), max(u.Holds, 0)
	u.Missed = min(max(u.Missed, 0), u.Closed)
}

// UnmarshalJSON decodes a stored warehouse aggregate and sanitizes it.
func (w *Warehouse) UnmarshalJSON(b []byte) error {
	type plain Warehouse // without the method, so no recursion
	if err := json.Unmarshal(b, (*plain)(w)); err != nil {
		return err
	}
	w.Sanitize()
	return nil
}

// UnmarshalJSON decodes a stored carrier aggregate and sanitizes it.
func (r *Carrier) UnmarshalJSON(b []byte) error {
	type plain Carrier
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	r.Sanitize()
	return nil
}

// UnmarshalJSON decodes a stored customer aggregate and sanitizes it.
func (u *Customer) UnmarshalJSON(b []byte) error {
	type plain Customer
	if err := json.Unmarshal(b, (*plain)(u)); err != nil {
		return err
	}
	u.Sanitize()
	return nil
}

func clamp64(x, lo, hi float64) float64 { return min(max(x, lo), hi) }
