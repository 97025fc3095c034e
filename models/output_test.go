package models

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/features"
)

func TestValidScoreAndDistribution(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		v    float32
		want bool
	}{{0, true}, {1, true}, {0.5, true}, {nan, false}, {inf, false}, {-inf, false}, {-0.01, false}, {1.01, false}} {
		if got := ValidScore(c.v); got != c.want {
			t.Errorf("ValidScore(%v) = %v", c.v, got)
		}
	}
	for _, c := range []struct {
		p    []float32
		want bool
	}{
		{[]float32{0.2, 0.8}, true}, {[]float32{1, 0}, true}, {[]float32{0.5, 0.4}, false},
		{[]float32{nan, 1}, false}, {[]float32{-0.5, 1.5}, false}, {[]float32{inf, 0}, false},
	} {
		if got := ValidDistribution(c.p); got != c.want {
			t.Errorf("ValidDistribution(%v) = %v", c.p, got)
		}
	}
}

// pastCutoffRows returns n rows, the first bad of them past the cutoff.
func pastCutoffRows(n, bad int) []float32 {
	rows := make([]float32, n*features.NumFeatures)
	for i := range n {
		m := float32(120)
		if i < bad {
			m = -30
		}
		rows[i*features.NumFeatures+features.FMinutesToCutoff] = m
	}
	return rows
}

// TestBadOutputsTakeAVersionOutOfService: a version whose outputs keep coming
// out unusable is counted, then taken out of service like a rejected one; the
// version below serves again after the next scan. A version with few bad rows
// keeps serving.
func TestBadOutputsTakeAVersionOutOfService(t *testing.T) {
	for _, role := range []string{RoleActive, RoleShadow} {
		t.Run(role, func(t *testing.T) {
			r, dir, reg := newTestRegistry(t)
			r.opts.BadOutputs = BadOutputPolicy{Limit: 8, Window: 100}
			dropFixture(t, dir, "risk_nan", "1.1.0", role)
			r.Scan()
			get := func(s *Set) *Model {
				if role == RoleShadow {
					if sh := s.Shadows("cutoff_risk"); len(sh) > 0 {
						return sh[0]
					}
					return nil
				}
				return s.Model("cutoff_risk")
			}
			score := func(n, bad int) (*Model, int) {
				set := r.Acquire()
				defer set.Release()
				m := get(set)
				if m == nil {
					return nil, 0
				}
				out := make([]float32, n)
				if err := m.Score(pastCutoffRows(n, bad), out); err != nil {
					t.Fatal(err)
				}
				var got int
				for _, v := range out {
					if !ValidScore(v) {
						got++
					}
				}
				set.Report(m, n, got)
				return m, got
			}
			// 5 bad rows in each window of 100: below the limit of 8, it serves on.
			for range 4 {
				if m, got := score(50, 2); m == nil || m.Version() != "1.1.0" || got != 2 {
					t.Fatalf("scored by %v with %d bad rows, want 1.1.0 with 2", m, got)
				}
			}
			if got := testutil.ToFloat64(r.badOutputs.WithLabelValues("cutoff_risk", "1.1.0", role)); got != 8 {
				t.Errorf("bad_outputs_total = %v, want 8", got)
			}
			score(20, 8) // the limit within one window
			set := r.Acquire()
			if m := get(set); m != nil && m.Version() == "1.1.0" {
				t.Errorf("1.1.0 still serves as %s after 8 bad rows of 20", role)
			}
			set.Release()
			if got := testutil.ToFloat64(r.rejections.WithLabelValues("cutoff_risk", RejectBadOutputs)); got != 1 {
				t.Errorf("rejections{cutoff_risk,bad_outputs} = %v, want 1", got)
			}
			r.Scan()
			if role == RoleActive && live(r, "cutoff_risk") != riskShipped {
				t.Errorf("after the scan serving %q, want %s back", live(r, "cutoff_risk"), riskShipped)
			}
			var state, reason string
			for _, st := range r.Status().([]ModelStatus) {
				for _, v := range st.Versions {
					if st.Name == "cutoff_risk" && v.Version == "1.1.0" {
						state, reason = v.State, v.Reason
					}
				}
			}
			if state != "rejected" || reason != RejectBadOutputs {
				t.Errorf("status of 1.1.0: %s %s, want rejected bad_outputs", state, reason)
			}
			if n, err := testutil.GatherAndCount(reg, "orderwatch_model_bad_outputs_total"); err != nil || n == 0 {
				t.Errorf("orderwatch_model_bad_outputs_total not gathered: %d, %v", n, err)
			}
		})
	}
}
