package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bounds of --orders-retention: below a day an outage of a weekend loses events
// before orderwatch reads them; above ten years is a typo.
const (
	minRetention = 24 * time.Hour
	maxRetention = 10 * 365 * 24 * time.Hour
)

// retention is the value of --orders-retention: a Go duration (720h) or a number
// of days (30d), from a day to ten years.
type retention time.Duration

func (r *retention) String() string {
	d := time.Duration(*r)
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func (r *retention) Set(s string) error {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil {
			return fmt.Errorf("%q: want a duration such as 720h or a number of days such as 30d", s)
		}
		if n > uint64(maxRetention/(24*time.Hour)) {
			// Before the product, which wraps past 292 years (213534d was 30 days).
			return fmt.Errorf("%q: want from 1d to 3650d: JetStream deletes older messages whether orderwatch has read them or not", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%q: want a duration such as 720h or a number of days such as 30d", s)
		}
	}
	if d < minRetention || d > maxRetention {
		return fmt.Errorf("%q: want from 1d to 3650d: JetStream deletes older messages whether orderwatch has read them or not", s)
	}
	*r = retention(d)
	return nil
}
