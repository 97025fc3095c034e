package sim

import (
	"bytes"
	"testing"

	"github.com/orderwatch/orderwatch/features"
)

// TestCarrierStatusCodes: every carrier.status says in data.code what it is
// about: a failed pickup (NO_SHOW, PICKUP_LATE, ROLLED) before the order
// shipped, tracking (TRANSIT, TRANSIT_DELAY) after; the text stays.
func TestCarrierStatusCodes(t *testing.T) {
	out, _, _ := run(t, Options{Orders: 5000, Seed: 2, Scenario: Peak})
	shipped := map[string]bool{}
	seen := map[string]int{}
	for line := range bytes.SplitSeq(bytes.TrimSpace(out), []byte{'\n'}) {
		var ev features.Event
		if err := features.Decode(line, &ev); err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case features.TypeShipmentConfirmed:
			shipped[ev.OrderID] = true
		case features.TypeCarrierStatus:
			seen[ev.Data.Code]++
			if ev.Data.Text == "" {
				t.Errorf("%s: no text", line)
			}
			switch ev.Data.Code {
			case "NO_SHOW", "PICKUP_LATE", "ROLLED":
				if shipped[ev.OrderID] {
					t.Errorf("%s: a pickup failure after the order shipped", line)
				}
			case "TRANSIT", "TRANSIT_DELAY":
				if !shipped[ev.OrderID] {
					t.Errorf("%s: tracking before the order shipped", line)
				}
			default:
				t.Errorf("%s: code %q, want one of NO_SHOW, PICKUP_LATE, ROLLED, TRANSIT, TRANSIT_DELAY", line, ev.Data.Code)
			}
		}
	}
	for _, c := range []string{"NO_SHOW", "PICKUP_LATE", "ROLLED", "TRANSIT", "TRANSIT_DELAY"} {
		if seen[c] == 0 {
			t.Errorf("no carrier.status with code %s: %v", c, seen)
		}
	}
}
